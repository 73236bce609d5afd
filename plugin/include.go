package plugin

import (
	"slices"
	"strings"

	"paliprompt/core"
	"paliprompt/sdxl"
)

// The parts of a reply a request may leave out, beside sdxl's consumer
// formats (sdxl.Formats): what is not asked for is not rendered.
const (
	// PartPreview is the layout preview PNG.
	PartPreview = "preview"
	// PartObjectMasks are each object's binary and soft mask PNGs.
	PartObjectMasks = "object_masks"
	// PartRegionMasks are the SDXL plan's region mask PNGs.
	PartRegionMasks = "region_masks"
)

// HeaderInclude names the parts wanted with a raw image body:
// "preview, comfyui".
const HeaderInclude = "Paliprompt-Include"

// Parts lists every part a request can ask for, in reply order.
func Parts() []string {
	return append([]string{PartObjectMasks, PartPreview, PartRegionMasks}, sdxl.Formats...)
}

// Include is the set of parts a request asks for; nil: every part (the
// default).
type Include []string

// has reports whether the part is wanted.
func (in Include) has(part string) bool { return in == nil || slices.Contains(in, part) }

// formats are the sdxl formats wanted, nil for all.
func (in Include) formats() []string {
	if in == nil {
		return nil
	}
	out := []string{}
	for _, f := range sdxl.Formats {
		if in.has(f) {
			out = append(out, f)
		}
	}
	return out
}

// parseInclude reads a comma- or space-separated list of part names.
func parseInclude(s string) (Include, error) {
	return checkInclude(strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == ';' }))
}

// checkInclude is an ErrBadRequest naming the first unknown part.
func checkInclude(names []string) (Include, error) {
	out := Include{}
	for _, n := range names {
		n = strings.TrimSpace(n)
		if n == "" {
			continue
		}
		if !slices.Contains(Parts(), n) {
			return nil, core.Errorf(core.ErrBadRequest, "include: unknown part %q: use %s", n, strings.Join(Parts(), ", "))
		}
		out = append(out, n)
	}
	return out, nil
}
