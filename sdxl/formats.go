package sdxl

import (
	"slices"
	"strings"

	"paliprompt/core"
)

// The consumer formats of a plan, by the name a request uses for them
// (and the plan's JSON field).
const (
	FormatComfyUI          = "comfyui"
	FormatRegionalPrompter = "regional_prompter"
	FormatForgeCouple      = "forge_couple"
	FormatOmost            = "omost"
)

// Formats lists every consumer format Compose can build.
var Formats = []string{FormatComfyUI, FormatRegionalPrompter, FormatForgeCouple, FormatOmost}

// wants reports whether a request asks for a format: every format when it
// names none.
func (r Request) wants(format string) bool {
	return r.Formats == nil || slices.Contains(r.Formats, format)
}

// CheckFormats is an ErrBadRequest naming the first unknown format.
func CheckFormats(names []string) error {
	for _, n := range names {
		if !slices.Contains(Formats, n) {
			return core.Errorf(core.ErrBadRequest, "unknown consumer format %q: use %s", n, strings.Join(Formats, ", "))
		}
	}
	return nil
}
