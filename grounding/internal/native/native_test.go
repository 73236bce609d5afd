package native

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// testCUDA: PALIPROMPT_TEST_PROVIDER=cuda (make test-gpu) runs the tests
// on the CUDA build that make setup-gpu installs.
var testCUDA = os.Getenv("PALIPROMPT_TEST_PROVIDER") == "cuda"

// library is the ONNX Runtime build under test.
var library = filepath.Join("..", "..", "..", filepath.Dir(testLibraryRel(testCUDA)), "libonnxruntime.so.1")

// testLibraryRel is the .deps path of the build under test.
func testLibraryRel(cuda bool) string {
	if cuda {
		return cudaLibrary
	}
	return defaultLibrary
}

func testModel(t *testing.T, file string) string {
	t.Helper()
	p := filepath.Join("..", "..", "..", "testdata", "models", "tiny-paligemma2", file)
	if _, err := os.Stat(p); err != nil {
		t.Skipf("test model not built (make fixtures): %v", err)
	}
	return p
}

func runtimeForTest(t *testing.T) *Runtime {
	t.Helper()
	rt, err := LoadRuntime(library, testCUDA)
	if err != nil {
		t.Fatal(err)
	}
	return rt
}

func TestReadModelIO(t *testing.T) {
	io, err := ReadModelIO(testModel(t, "onnx/decoder_model_merged.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	if io.Inputs[0].Name != "inputs_embeds" || io.Inputs[0].DType != Float32 || len(io.Inputs[0].Shape) != 3 {
		t.Errorf("first input %+v", io.Inputs[0])
	}
	if io.Outputs[0].Name != "logits" {
		t.Errorf("first output %+v", io.Outputs[0])
	}
	for _, bad := range []string{"", "not protobuf at all \xff\xff\xff\xff"} {
		p := filepath.Join(t.TempDir(), "bad.onnx")
		os.WriteFile(p, []byte(bad), 0o644)
		if _, err := ReadModelIO(p); err == nil {
			t.Errorf("%q accepted as a model", bad)
		}
	}
}

func FuzzReadModelIO(f *testing.F) {
	f.Add([]byte("\x3a\x0a\x5a\x08\x0a\x01x\x12\x03\x0a\x01\x08"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(t.TempDir(), "m.onnx")
		os.WriteFile(p, data, 0o644)
		ReadModelIO(p) // must not panic or hang
	})
}

func TestLoadRuntime(t *testing.T) {
	rt := runtimeForTest(t)
	if !strings.HasPrefix(rt.Version(), "1.") || len(rt.Providers()) == 0 {
		t.Errorf("version %q providers %v", rt.Version(), rt.Providers())
	}
	again, err := LoadRuntime(library, testCUDA)
	if err != nil || again != rt {
		t.Errorf("second load: %v, %v", again, err)
	}
	if _, err := LoadRuntime("/elsewhere/libonnxruntime.so.1", false); err == nil || !strings.Contains(err.Error(), "already loaded") {
		t.Errorf("another library: %v", err)
	}
	if got := FindLibrary("x.so", true); got != "x.so" {
		t.Errorf("FindLibrary(x.so) = %q", got)
	}
}

func TestSessionErrors(t *testing.T) {
	rt := runtimeForTest(t)
	if _, err := rt.NewSession(filepath.Join(t.TempDir(), "missing.onnx"), SessionConfig{}); err == nil || !strings.Contains(err.Error(), "missing.onnx") {
		t.Errorf("missing file: %v", err)
	}
	path := testModel(t, "onnx/embed_tokens.onnx")
	if _, err := rt.NewSession(path, SessionConfig{GraphOptimization: "max"}); err == nil || !strings.Contains(err.Error(), `"max"`) {
		t.Errorf("bad optimization level: %v", err)
	}
	s, err := rt.NewSession(path, SessionConfig{CUDA: &CUDAConfig{}})
	if err == nil {
		s.Close() // a real GPU
	} else if !errors.Is(err, ErrNoCUDA) {
		t.Errorf("CUDA without a usable provider: error %v does not wrap ErrNoCUDA", err)
	} else {
		t.Logf("CUDA session: %v", err)
	}
}

func TestTensorsAndBinding(t *testing.T) {
	rt := runtimeForTest(t)
	if _, err := NewRaw(Float16, []int64{2, 3}, make([]byte, 11)); err == nil {
		t.Error("short float16 buffer accepted")
	}
	s, err := rt.NewSession(testModel(t, "onnx/embed_tokens.onnx"), SessionConfig{IntraOpThreads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	hidden := s.IO().Outputs[0].Shape[2]
	ids, _ := NewInt64([]int64{1, 3}, []int64{1, 2, 3})
	defer ids.Close()
	out := make([]float32, 3*hidden)
	embeds, _ := NewFloat32([]int64{1, 3, hidden}, out)
	defer embeds.Close()
	if err := s.Run([]*Tensor{ids}, []*Tensor{embeds}); err != nil {
		t.Fatal(err)
	}
	// The same run through an IoBinding with the output left in memory
	// ONNX Runtime allocates (what the decoder does with the KV cache on
	// CUDA), fed back as an input of a second run.
	b, err := s.NewBinding()
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	mem, err := CPUMemory()
	if err != nil {
		t.Fatal(err)
	}
	defer mem.Close()
	if err := b.BindInput("input_ids", ids); err != nil {
		t.Fatal(err)
	}
	if err := b.BindOutputTo("inputs_embeds", mem); err != nil {
		t.Fatal(err)
	}
	vals, err := b.Run()
	if err != nil {
		t.Fatal(err)
	}
	v := vals["inputs_embeds"]
	defer v.Close()
	shape, err := v.Shape()
	if err != nil || len(shape) != 3 || shape[1] != 3 || shape[2] != hidden {
		t.Errorf("bound output shape %v, %v", shape, err)
	}
	// Binding the output again, to a Go tensor, replaces the memory
	// binding: the run writes into the tensor and hands nothing over.
	again := make([]float32, len(out))
	t2, _ := NewFloat32([]int64{1, 3, hidden}, again)
	defer t2.Close()
	if err := b.BindOutput("inputs_embeds", t2); err != nil {
		t.Fatal(err)
	}
	if vals, err := b.Run(); err != nil || len(vals) != 0 {
		t.Errorf("run with the output rebound to a tensor: %d values, %v", len(vals), err)
	}
	if !slices.Equal(again, out) {
		t.Error("the rebound output tensor does not hold the embeddings")
	}
	if err := b.BindValue("input_ids", v); err == nil {
		// A float32 value bound to an int64 input must fail at run time.
		if _, err := b.Run(); err == nil {
			t.Error("float embeddings accepted as input_ids")
		}
	}
}
