// Package layouts turns what PaliGemma found in a reference image into
// layout constraints for the image to generate, and draws the preview.
//
// # Contract
//
// Input: a core.Result (image size, caption, answers, objects with
// pixel boxes and optional masks) and a Placement. Output: a Layout, a
// plain value with JSON tags (snake_case) that the plugin puts in its
// reply and the sdxl stage reads. Everything is a pure function of its
// input: no I/O, no models, no NATS. A Planner holds only its Config and
// is safe for concurrent use. Errors only for input that cannot be laid
// out; they are core.ErrBadRequest errors (a 400).
//
// What a Layout holds, per object (boxes normalized to 0..1, JSON arrays
// [x0, y0, x1, y1]): the reference box and the placed box on the target
// canvas; the quadrant by centre (a centre on a line goes right/down) and
// the share of the object (mask, else box) in each quadrant; the 3x3 grid
// cell and Omost's location, offset and area names (vocab.go); the share
// of the frame it covers; its depth rank (assignDepth documents the
// heuristic); a location phrase and a sentence for prompts. Between
// objects: relations (relations.go states the thresholds). Clean-up
// (cleanup.go) clamps boxes, drops degenerate ones, merges same-label
// duplicates and caps the count; every object or mask left out is in
// Layout.Dropped with the reason. Placement requests that could not be
// honoured as asked are in Layout.Conflicts; nothing is dropped silently.
//
// # Placement
//
// A request may move or resize objects on the target canvas and mirror
// the whole layout (places.go says where each kind of place puts an
// object). JSON: {"place": {"<label or index>": "top-left" | "on the
// right" | [x0, y0, x1, y1]}, "mirror": true}; decode "place" into Moves.
// Header: Paliprompt-Place: character=top-left; dog=on the right; mirror,
// parsed by ParsePlacement. An index is the object's position in
// Layout.Objects (the grounder's order after clean-up); a label matches
// case-insensitively. A moved object's mask keeps its shape, scaled into
// its new box; its location phrase, relations and depth follow it.
//
// # How the plugin calls us
//
// Example (example_test.go, compiled and run by go test) shows the calls:
// New with the [layout] table, ParsePlacement for the Paliprompt-Place
// header (a JSON request's "place" decodes into Moves), Build on the
// grounder's core.Result, then Preview with the sdxl plan's canvas.
//
// The preview shows the reference (grid, quadrant lines, boxes, masks,
// labels) beside the SDXL canvas (region masks in their colours), with a
// legend of objects, conflicts and region prompts, and under it the
// canvas's extra panels (Canvas.Panels: the plan's conditioning images)
// small. frames.go exports the canvas-to-reference maps that stages
// carrying reference pixels onto the canvas need.
package layouts
