package sdxl_test

import (
	"fmt"

	"paliprompt/core"
	"paliprompt/layouts"
	"paliprompt/sdxl"
)

// The calls the plugin makes: a composer from the [sdxl] table (no
// tokenizer: the estimate), the style prefixes to add to the grounding
// request, the plan of a layout with the request's "sdxl" options, and
// the plan's canvas for the layout preview.
func Example() {
	cfg := sdxl.DefaultConfig()
	cfg.StyleQuestions = sdxl.PhotoStyleQuestions[:1]
	composer, err := sdxl.New(cfg, nil)
	if err != nil {
		panic(err)
	}
	fmt.Println("style prefixes:", composer.StylePrefixes("en"))
	planner, _ := layouts.New(layouts.DefaultConfig())
	layout, _ := planner.Build(core.Result{Width: 1280, Height: 960, Caption: "a red ball on a table", Objects: []core.Object{
		{Label: "red ball", Box: core.Box{X0: 100, Y0: 100, X1: 500, Y1: 500}, Source: core.TaskDetect},
	}}, layouts.Placement{})
	plan, err := composer.Compose(layout, sdxl.Request{ID: "example", Lang: "en", Negative: "fog"})
	if err != nil {
		panic(err)
	}
	fmt.Printf("%dx%d, %d regions\n", plan.Width, plan.Height, len(plan.Regions))
	fmt.Println("positive:", plan.Positive)
	fmt.Println("negative:", plan.Negative)
	for _, f := range plan.Files() {
		fmt.Println("file:", f.Name)
	}
	preview := planner.Preview(nil, layout, plan.Canvas())
	fmt.Println("preview", preview.Bounds().Size())
	// Output:
	// style prefixes: [answer en what is the art style of this image?]
	// 1152x896, 2 regions
	// positive: a red ball on a table, a red ball in the upper-left quadrant, taking about a tenth of the frame, high quality, detailed
	// negative: lowres, blurry, jpeg artifacts, watermark, text, deformed, fog
	// file: paliprompt_example_00-red-ball_04df6ada.png
	// file: paliprompt_example_01-background_263fa494.png
	// file: paliprompt_example_rp-mask_0578b179.png
	// preview (1727,756)
}
