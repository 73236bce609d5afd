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
	// FormatA1111 is the A1111/Forge API request bodies (Plan.WebUI) of
	// Regional Prompter and Forge Couple, images inline; they are built
	// from those formats' plans, which the reply has only when asked for.
	FormatA1111 = "a1111"
)

// Formats lists every consumer format Compose can build.
var Formats = []string{FormatComfyUI, FormatRegionalPrompter, FormatForgeCouple, FormatOmost, FormatA1111}

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
