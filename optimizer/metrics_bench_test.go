package optimizer

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/chanopt/chanopt/internal/testenv"
	"github.com/chanopt/chanopt/onnx"
)

// exportResNet50 writes torchvision's ResNet-50 with random weights (BN folded into the convs by the
// eval export) to dir, for when the zoo was not built.
const exportResNet50 = `
import sys, torch, torchvision
torch.manual_seed(0)
torch.set_num_threads(2)
m = torchvision.models.resnet50(weights=None).eval()
torch.onnx.export(m, torch.randn(1, 3, 224, 224), sys.argv[1], opset_version=13)
`

// resNet50 returns the zoo's ResNet-50, or exports one into a temporary folder.
func resNet50(b *testing.B) string {
	b.Helper()
	if p := filepath.Join(testenv.ZooDir(), "resnet50.onnx"); fileExists(p) {
		return p
	}
	testenv.RequirePythonModules(b, "torch", "torchvision")
	p := filepath.Join(b.TempDir(), "resnet50.onnx")
	if out, err := exec.Command(testenv.Python(), "-c", exportResNet50, p).CombinedOutput(); err != nil {
		b.Fatalf("exporting resnet50: %v\n%s", err, out)
	}
	return p
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// BenchmarkLayerMetricsResNet50 measures the metrics of ResNet-50's 53 convs and its classifier
// (unfoldings up to 2048×1024 and 512×4608).
func BenchmarkLayerMetricsResNet50(b *testing.B) {
	m, err := onnx.Load(resNet50(b))
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		lms, err := LayerMetricsOf(m)
		if err != nil {
			b.Fatal(err)
		}
		if len(lms) != 54 {
			b.Fatalf("%d layers, want 54", len(lms))
		}
	}
}
