package layouts_test

import (
	"fmt"

	"paliprompt/core"
	"paliprompt/layouts"
)

// The calls the plugin makes: a planner from the [layout] table, the
// placement from the Paliprompt-Place header, the layout of a grounding
// result, and the preview (here without the reference image, and with the
// canvas of no SDXL plan).
func Example() {
	planner, err := layouts.New(layouts.DefaultConfig())
	if err != nil {
		panic(err)
	}
	place, err := layouts.ParsePlacement("dog=top-left; mirror")
	if err != nil {
		panic(err)
	}
	result := core.Result{Width: 640, Height: 480, Caption: "a cat and a dog on a lawn", Objects: []core.Object{
		{Label: "cat", Box: core.Box{X0: 40, Y0: 200, X1: 280, Y1: 460}, Source: core.TaskDetect},
		{Label: "dog", Box: core.Box{X0: 360, Y0: 180, X1: 620, Y1: 470}, Source: core.TaskDetect},
	}}
	layout, err := planner.Build(result, place)
	if err != nil {
		panic(err)
	}
	for _, o := range layout.Objects {
		fmt.Printf("%s %s %s depth %d: %s\n", o.Label, o.Quadrant, o.Placed, o.Depth, o.Sentence)
	}
	preview := planner.Preview(nil, layout, layouts.Canvas{Width: 1152, Height: 896})
	fmt.Println("preview", preview.Bounds().Size())
	// Output:
	// cat bottom-right [0.562, 0.417, 0.938, 0.958] depth 1: a cat in the lower-right quadrant, taking about a fifth of the frame
	// dog top-left [0.082, 0.000, 0.418, 0.500] depth 2: a dog in the upper-left quadrant, taking about a fifth of the frame
	// preview (1727,756)
}
