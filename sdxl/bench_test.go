package sdxl

import (
	"image"
	"testing"
	"time"

	"paliprompt/internal/pngenc"
	"paliprompt/layouts"
)

// BenchmarkPipeline measures one 1280x960 image with ten objects (five
// segmented): the layout, the prompts, the masks at the bucket size, the
// 11 mask PNGs, the whole Compose (with the consumer formats and the
// Regional Prompter colour mask), the preview drawn at the bucket's
// height, and the encoding of every PNG of the plan and the preview. Each
// stage is reported in ms per image; image-ms is the real path (layout,
// Compose, preview, all PNGs; the prompts, masks and 11png stages are
// parts of Compose measured on their own).
func BenchmarkPipeline(b *testing.B) {
	res := tenObjects()
	cfg := layouts.DefaultConfig()
	cfg.PreviewHeight = 896 // the bucket's height: the canvas panel at bucket size
	planner, err := layouts.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	c := newComposer(b, nil, nil)
	ref := sceneImage(res)
	var layoutT, promptT, maskT, pngT, composeT, previewT, encodeT time.Duration
	for b.Loop() {
		t0 := time.Now()
		l, err := planner.Build(res, layouts.Placement{})
		if err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		var notes []string
		c.chunk(c.globalPhrases(l, c.styleAnswers(l, "en"), Request{}), "positive prompt", &notes)
		for i, o := range l.Objects {
			c.regionPrompt(subject(l.Caption, o.Label, nil), l.Objects[i], &notes)
		}
		t2 := time.Now()
		own := make([]*image.Gray, len(l.Objects))
		bounds := make([]image.Rectangle, len(l.Objects))
		for i := range l.Objects {
			own[i], bounds[i] = c.objectRaster(&l.Objects[i], 1152, 896)
		}
		regions, bg := c.resolveMasks(l.Objects, own, bounds, 1152, 896)
		t3 := time.Now()
		for _, m := range append(regions, bg) {
			if _, err := pngenc.Bytes(m); err != nil {
				b.Fatal(err)
			}
		}
		t4 := time.Now()
		p, err := c.Compose(l, Request{})
		if err != nil {
			b.Fatal(err)
		}
		t5 := time.Now()
		preview := planner.Preview(ref, l, p.Canvas())
		t6 := time.Now()
		if err := p.EncodeFiles(); err != nil {
			b.Fatal(err)
		}
		if _, err := pngenc.Bytes(preview); err != nil {
			b.Fatal(err)
		}
		t7 := time.Now()
		layoutT += t1.Sub(t0)
		promptT += t2.Sub(t1)
		maskT += t3.Sub(t2)
		pngT += t4.Sub(t3)
		composeT += t5.Sub(t4)
		previewT += t6.Sub(t5)
		encodeT += t7.Sub(t6)
	}
	n := float64(b.N)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) / n }
	b.ReportMetric(ms(layoutT), "layout-ms")
	b.ReportMetric(ms(promptT), "prompts-ms")
	b.ReportMetric(ms(maskT), "masks-ms")
	b.ReportMetric(ms(pngT), "11png-ms")
	b.ReportMetric(ms(composeT), "compose-ms")
	b.ReportMetric(ms(previewT), "preview-ms")
	b.ReportMetric(ms(encodeT), "allpng-ms")
	// What one image costs on the real path: layout, Compose, the preview
	// and every PNG (plan files and preview), one after another.
	b.ReportMetric(ms(layoutT+composeT+previewT+encodeT), "image-ms")
}
