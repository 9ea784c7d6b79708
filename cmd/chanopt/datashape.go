package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/chanopt/chanopt/dataset"
	"github.com/chanopt/chanopt/onnx"
	"github.com/urfave/cli/v2"
)

// imageSizeFlag sets the size images are resized to when the model's H and W are symbolic.
var imageSizeFlag = &cli.StringFlag{Name: "image-size",
	Usage: "HxW: resize --data images to this size when the model's height and width are symbolic (default: the data's own size, a folder's first image's); --input-shape overrides"}

// parseImageSize reads --image-size HxW (× also accepted).
func parseImageSize(s string) (h, w int, err error) {
	hs, ws, ok := strings.Cut(strings.ReplaceAll(strings.ToLower(s), "×", "x"), "x")
	if ok {
		h, err = strconv.Atoi(strings.TrimSpace(hs))
		if err == nil {
			w, err = strconv.Atoi(strings.TrimSpace(ws))
		}
	}
	if !ok || err != nil || h < 1 || w < 1 || h > maxImageSide || w > maxImageSide {
		return 0, 0, usagef("--image-size %q: want HxW, each 1 to %d (e.g. 48x192)", s, maxImageSide)
	}
	return h, w, nil
}

// maxImageSide bounds --image-size, as the data package bounds every input dim.
const maxImageSide = 1 << 16

// loadModelData reads --data for m's one input and returns the input shapes it fixes: dims the
// model leaves symbolic take the images' size (a symbolic batch is 1), so a model with symbolic
// N, H and W needs no --input-shape. Images are resized to the model's H×W when it fixes them;
// when they are symbolic, to --image-size, else to the data's own size (a file's, or a folder's
// first image's). --input-shape overrides the declared shape.
func loadModelData(c *cli.Context, path string, m *onnx.Model, given map[string]onnx.Shape, progress func(done, total int)) (map[string]onnx.Shape, *dataset.Set, error) {
	g := m.Graph
	if len(g.Inputs) != 1 {
		return nil, nil, fmt.Errorf("%s: --data needs a model with one input, this one has %d", path, len(g.Inputs))
	}
	name := g.Inputs[0]
	shape, ok := given[name]
	if !ok {
		v := g.Values[name]
		if v == nil || v.Shape == nil {
			return nil, nil, fmt.Errorf("%s: input %q has no declared shape; give --input-shape %s:N,C,H,W", path, name, name)
		}
		shape = v.Shape.Clone()
	}
	if len(shape) != 4 {
		return nil, nil, fmt.Errorf("%s: --data feeds images to a model with one N×C×H×W input; this input is %v", path, shape)
	}
	if !shape[1].Known() {
		return nil, nil, fmt.Errorf("%s: input %q has symbolic channels %v; give --input-shape %s:1,C,H,W", path, name, shape, name)
	}
	h, w := int(shape[2].Size), int(shape[3].Size)
	switch {
	case c.IsSet("image-size"):
		ih, iw, err := parseImageSize(c.String("image-size"))
		if err != nil {
			return nil, nil, err
		}
		if shape[2].Known() && h != ih || shape[3].Known() && w != iw {
			return nil, nil, usagef("--image-size %dx%d: the model's input %q is fixed at %v", ih, iw, name, shape)
		}
		h, w = ih, iw
	case !shape[2].Known() && !shape[3].Known():
		h, w = 0, 0 // the data's own size
	case !shape[2].Known() || !shape[3].Known():
		return nil, nil, fmt.Errorf("%s: input %q has one symbolic spatial dim %v; give --image-size HxW or --input-shape %s:1,C,H,W", path, name, shape, name)
	}
	set, err := loadData(c, int(shape[1].Size), h, w, progress)
	if err != nil {
		return nil, nil, err
	}
	notes := set.Notes
	if h == 0 {
		notes = append(notes, fmt.Sprintf("input %q has symbolic height and width: the images' own size, %d×%d, is used (--image-size HxW to resize them)", name, set.H, set.W))
	}
	if !c.Bool("quiet") {
		for _, n := range notes {
			fmt.Fprintf(c.App.ErrWriter, "chanopt: %s\n", n)
		}
	}
	batch := onnx.D(1)
	if shape[0].Known() {
		batch = shape[0]
	}
	shapes, err := onnx.BatchOne(g, map[string]onnx.Shape{name: {batch, shape[1], onnx.D(int64(set.H)), onnx.D(int64(set.W))}})
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	return shapes, set, nil
}
