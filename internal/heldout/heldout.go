// Package heldout reads the demo model's held-out scenes
// (testdata/demo-heldout/, written by tools/train_demo_model.py): each
// scene's JPEG, its truth (caption; objects with name, shape, colour and
// box) and its object-index PNG. The quality and verify tests and the
// sdxl hint tests use them.
package heldout

import (
	"encoding/json"
	"fmt"
	"image"
	"image/draw"
	"image/png"
	"os"
	"path/filepath"
)

// Object is one shape of a scene; MaskValue is its value in the scene's
// object-index PNG.
type Object struct {
	Name      string     `json:"name"`
	Shape     string     `json:"shape"`
	Colour    string     `json:"colour"`
	Box       [4]float64 `json:"box"`
	MaskValue uint8      `json:"mask_value"`
}

// Scene is one held-out scene; Image and ObjectsPNG are file names in the
// scenes' folder.
type Scene struct {
	Image      string   `json:"image"`
	ObjectsPNG string   `json:"objects_png"`
	Caption    string   `json:"caption"`
	Width      int      `json:"width"`
	Height     int      `json:"height"`
	Objects    []Object `json:"objects"`
}

// Load reads dir/truth.json.
func Load(dir string) ([]Scene, error) {
	data, err := os.ReadFile(filepath.Join(dir, "truth.json"))
	if err != nil {
		return nil, fmt.Errorf("held-out scenes (tools/train_demo_model.py writes them): %w", err)
	}
	var truth struct {
		Scenes []Scene `json:"scenes"`
	}
	if err := json.Unmarshal(data, &truth); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, "truth.json"), err)
	}
	return truth.Scenes, nil
}

// Labels reads the scene's object-index map: each pixel is the MaskValue
// of the object that covers it, or 0.
func Labels(dir string, sc Scene) (*image.Gray, error) {
	path := filepath.Join(dir, sc.ObjectsPNG)
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if g, ok := img.(*image.Gray); ok {
		return g, nil
	}
	g := image.NewGray(img.Bounds())
	draw.Draw(g, g.Bounds(), img, image.Point{}, draw.Src)
	return g, nil
}
