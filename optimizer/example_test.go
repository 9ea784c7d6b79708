package optimizer_test

import (
	"context"
	"fmt"
	"log"

	"github.com/chanopt/chanopt/dataset"
	"github.com/chanopt/chanopt/onnx"
	"github.com/chanopt/chanopt/optimizer"
)

// Shrink a bundled model to half its MACs without data: the widths come from the data-free
// search, and the removed channels' means are folded into the layers that read them (what
// `chanopt shrink MODEL --macs 0.5 --no-distill` does).
func ExampleShrink() {
	m, err := onnx.Load("../models/resnet8.onnx")
	if err != nil {
		log.Fatal(err)
	}
	opt := optimizer.DefaultOptions()
	opt.Budget = optimizer.Budget{Kind: optimizer.MACs, Ratio: 0.5}
	opt.Repair = optimizer.RepairCompensate
	opt.Iterations = 500
	res, err := optimizer.Shrink(context.Background(), m, opt)
	if err != nil {
		log.Fatal(err)
	}
	r := res.Report
	fmt.Printf("MACs kept: %.2f, within the budget: %v\n", float64(r.After.MACs)/float64(r.Before.MACs), float64(r.After.MACs) <= 0.5*float64(r.Before.MACs))
	fmt.Println("repair:", r.Distill.Mode, "with means", r.Compensation.Means)
	// Output:
	// MACs kept: 0.50, within the budget: true
	// repair: compensate with means estimated
}

// Shrink with the user's own images: Shrink holds a tenth of them back to check the result and
// repairs the slim model on the rest (here without fine-tuning, to keep the example quick).
func ExampleShrink_withData() {
	m, err := onnx.Load("../models/resnet8.onnx")
	if err != nil {
		log.Fatal(err)
	}
	images, err := dataset.Load("../models/data/calib-images-idx3-ubyte.gz", "", dataset.Options{Channels: 1, Height: 28, Width: 28, Samples: 500})
	if err != nil {
		log.Fatal(err)
	}
	opt := optimizer.DefaultOptions()
	opt.Budget = optimizer.Budget{Kind: optimizer.MACs, Ratio: 0.5}
	opt.Data = images
	opt.Search = optimizer.SearchUniform
	opt.Epochs = 0
	res, err := optimizer.Shrink(context.Background(), m, opt)
	if err != nil {
		log.Fatal(err)
	}
	d := res.Report.Distill
	fmt.Printf("repaired on %d images, checked on %d held back\n", d.Samples, d.HeldBack)
	for _, s := range d.Stages {
		fmt.Println("stage:", s.Name)
	}
	// Output:
	// repaired on 450 images, checked on 50 held back
	// stage: inherit
	// stage: bias-correction
	// stage: refit
}
