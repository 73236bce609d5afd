package native

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"unsafe"

	ort "github.com/yalue/onnxruntime_go"
)

// ErrNoCUDA is returned when a session asks for CUDA and the library or the
// machine cannot provide it; callers fall back to CPU.
var ErrNoCUDA = errors.New("CUDA execution provider not available")

// SessionConfig tunes one session.
type SessionConfig struct {
	// IntraOpThreads is the number of threads of one operator; 0 lets ONNX
	// Runtime choose (one per physical core).
	IntraOpThreads int
	// GraphOptimization is "disable", "basic", "extended" or "all".
	GraphOptimization string
	// OptimizedModelPath, when set, is where ONNX Runtime writes the
	// optimized graph (to be loaded directly next time).
	OptimizedModelPath string
	// CUDA selects the CUDA execution provider; nil means CPU.
	CUDA *CUDAConfig
}

// CUDAConfig holds the CUDA execution provider's options.
type CUDAConfig struct {
	DeviceID            int
	MemLimitMB          int    // 0: no limit
	CudnnConvAlgoSearch string // "EXHAUSTIVE", "HEURISTIC" or "DEFAULT"
	// NoTF32 keeps float32 matmuls and convolutions in full float32 on
	// GPUs with TensorFloat-32 (Ampere and later; a V100 has none), which
	// ONNX Runtime otherwise uses for them (use_tf32, 10-bit mantissas).
	NoTF32 bool
}

var optimizationLevels = map[string]ort.GraphOptimizationLevel{
	"disable":  ort.GraphOptimizationLevelDisableAll,
	"basic":    ort.GraphOptimizationLevelEnableBasic,
	"extended": ort.GraphOptimizationLevelEnableExtended,
	"all":      ort.GraphOptimizationLevelEnableAll,
	"":         ort.GraphOptimizationLevelEnableAll,
}

// Session is one loaded model.
type Session struct {
	s    *ort.DynamicAdvancedSession
	io   ModelIO
	path string
	cuda bool
}

// NewSession loads the .onnx file at path with every graph input and
// output. Errors name the file; a CUDA request that cannot be met wraps
// ErrNoCUDA.
func (r *Runtime) NewSession(path string, cfg SessionConfig) (*Session, error) {
	io, err := ReadModelIO(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return r.newSession(path, io, cfg, func(in, out []string, opts *ort.SessionOptions) (*ort.DynamicAdvancedSession, error) {
		return ort.NewDynamicAdvancedSession(path, in, out, opts)
	})
}

// NewSessionFromBytes loads a serialized model (e.g. a Graph's); name
// stands for its path in errors.
func (r *Runtime) NewSessionFromBytes(name string, model []byte, cfg SessionConfig) (*Session, error) {
	io, err := readModelIO(bytes.NewReader(model), int64(len(model)))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	return r.newSession(name, io, cfg, func(in, out []string, opts *ort.SessionOptions) (*ort.DynamicAdvancedSession, error) {
		return ort.NewDynamicAdvancedSessionWithONNXData(model, in, out, opts)
	})
}

func (r *Runtime) newSession(path string, io ModelIO, cfg SessionConfig,
	create func(in, out []string, opts *ort.SessionOptions) (*ort.DynamicAdvancedSession, error)) (*Session, error) {
	opts, err := r.sessionOptions(cfg)
	if err != nil {
		return nil, fmt.Errorf("session options for %s: %w", path, err)
	}
	defer opts.Destroy()
	s, err := create(names(io.Inputs), names(io.Outputs), opts)
	if err != nil {
		if cfg.CUDA != nil {
			return nil, fmt.Errorf("%w: load %s on CUDA device %d: %v", ErrNoCUDA, path, cfg.CUDA.DeviceID, err)
		}
		return nil, fmt.Errorf("load %s: %w", path, err)
	}
	return &Session{s: s, io: io, path: path, cuda: cfg.CUDA != nil}, nil
}

func names(infos []IOInfo) []string {
	out := make([]string, len(infos))
	for i, in := range infos {
		out[i] = in.Name
	}
	return out
}

func (r *Runtime) sessionOptions(cfg SessionConfig) (*ort.SessionOptions, error) {
	opts, err := ort.NewSessionOptions()
	if err != nil {
		return nil, err
	}
	level, ok := optimizationLevels[cfg.GraphOptimization]
	if !ok {
		opts.Destroy()
		return nil, fmt.Errorf("graph optimization %q is not one of disable, basic, extended, all", cfg.GraphOptimization)
	}
	err = errors.Join(opts.SetGraphOptimizationLevel(level), opts.SetIntraOpNumThreads(cfg.IntraOpThreads))
	if err == nil && cfg.OptimizedModelPath != "" {
		err = opts.SetOptimizedModelFilePath(cfg.OptimizedModelPath)
	}
	if err == nil && cfg.CUDA != nil {
		err = r.appendCUDA(opts, *cfg.CUDA)
	}
	if err != nil {
		opts.Destroy()
		return nil, err
	}
	return opts, nil
}

func (r *Runtime) appendCUDA(opts *ort.SessionOptions, c CUDAConfig) error {
	if !r.HasCUDA() {
		return fmt.Errorf("%w: %s was built without it (providers: %v; make setup-gpu installs the CUDA build)", ErrNoCUDA, r.path, r.providers)
	}
	if _, err := r.preloadCUDA(); err != nil {
		return fmt.Errorf("%w: %v", ErrNoCUDA, err)
	}
	cuda, err := ort.NewCUDAProviderOptions()
	if err != nil {
		return fmt.Errorf("%w: %v", ErrNoCUDA, err)
	}
	defer cuda.Destroy()
	settings := map[string]string{"device_id": strconv.Itoa(c.DeviceID)}
	if c.MemLimitMB > 0 {
		settings["gpu_mem_limit"] = strconv.FormatInt(int64(c.MemLimitMB)<<20, 10)
	}
	if c.CudnnConvAlgoSearch != "" {
		settings["cudnn_conv_algo_search"] = c.CudnnConvAlgoSearch
	}
	if c.NoTF32 {
		settings["use_tf32"] = "0"
	}
	if err := cuda.Update(settings); err != nil {
		return fmt.Errorf("%w: %v", ErrNoCUDA, err)
	}
	if err := opts.AppendExecutionProviderCUDA(cuda); err != nil {
		return fmt.Errorf("%w: %v", ErrNoCUDA, err)
	}
	return nil
}

// IO returns the model's inputs and outputs.
func (s *Session) IO() ModelIO { return s.io }

// Path is the model file.
func (s *Session) Path() string { return s.path }

// OnCUDA reports whether the session runs on the CUDA provider.
func (s *Session) OnCUDA() bool { return s.cuda }

// Run runs the model with one tensor per graph input and output, in the
// order of IO(). Outputs are written into the given tensors.
func (s *Session) Run(inputs, outputs []*Tensor) error {
	in, out := make([]ort.Value, len(inputs)), make([]ort.Value, len(outputs))
	for i, t := range inputs {
		in[i] = t.v
	}
	for i, t := range outputs {
		out[i] = t.v
	}
	if err := s.s.Run(in, out); err != nil {
		return fmt.Errorf("run %s: %w", s.path, err)
	}
	return nil
}

// Close releases the session.
func (s *Session) Close() {
	if s != nil && s.s != nil {
		s.s.Destroy()
		s.s = nil
	}
}

// Binding feeds a session through an IoBinding: inputs and outputs stay
// bound between runs, outputs can be left in ONNX Runtime's memory (a GPU's
// included) and fed back as inputs without passing through Go. Binding a
// name again replaces what it was bound to (ONNX Runtime's IOBinding keeps
// one entry per name, in first-bind order).
type Binding struct {
	sess *Session
	b    *ort.IoBinding
	// outputs lists the bound outputs in first-bind order, the order
	// ONNX Runtime returns them in; toMemory marks those bound with
	// BindOutputTo (ONNX Runtime allocates them; Run hands them over).
	outputs  []string
	toMemory map[string]bool
}

// NewBinding creates an IoBinding for the session.
func (s *Session) NewBinding() (*Binding, error) {
	b, err := s.s.CreateIoBinding()
	if err != nil {
		return nil, fmt.Errorf("create IoBinding for %s: %w", s.path, err)
	}
	return &Binding{sess: s, b: b, toMemory: map[string]bool{}}, nil
}

// BindInput binds a Go tensor to an input.
func (b *Binding) BindInput(name string, t *Tensor) error {
	if err := b.b.BindInput(name, t.v); err != nil {
		return fmt.Errorf("bind input %s: %w", name, err)
	}
	return nil
}

// BindValue binds a value ONNX Runtime produced (e.g. last step's
// present.*) to an input, wherever its memory is.
func (b *Binding) BindValue(name string, v *Value) error {
	if err := bindInputRaw(ioBindingPointer(b.b), name, unsafe.Pointer(v.v)); err != nil {
		return fmt.Errorf("bind input %s: %w", name, err)
	}
	return nil
}

// BindOutput binds a Go tensor to an output: ONNX Runtime writes into it.
func (b *Binding) BindOutput(name string, t *Tensor) error {
	if err := b.b.BindOutput(name, t.v); err != nil {
		return fmt.Errorf("bind output %s: %w", name, err)
	}
	b.bound(name, false)
	return nil
}

func (b *Binding) anyToMemory() bool {
	for _, m := range b.toMemory {
		if m {
			return true
		}
	}
	return false
}

// bound records an output binding.
func (b *Binding) bound(name string, toMemory bool) {
	if _, ok := b.toMemory[name]; !ok {
		b.outputs = append(b.outputs, name)
	}
	b.toMemory[name] = toMemory
}

// BindOutputTo lets ONNX Runtime allocate an output in mem (host or device
// memory); Run's results then hold it.
func (b *Binding) BindOutputTo(name string, mem *MemoryInfo) error {
	if err := bindOutputTo(ioBindingPointer(b.b), name, mem); err != nil {
		return fmt.Errorf("bind output %s to %s memory: %w", name, mem, err)
	}
	b.bound(name, true)
	return nil
}

// Run runs the session and returns the outputs bound with BindOutputTo,
// by name; the caller owns them. Outputs bound to Go tensors are already
// in those tensors (and, with none bound to memory, Run asks ONNX Runtime
// for nothing more).
func (b *Binding) Run() (map[string]*Value, error) {
	if err := b.sess.s.RunWithBinding(b.b); err != nil {
		return nil, fmt.Errorf("run %s: %w", b.sess.path, err)
	}
	out := make(map[string]*Value)
	if !b.anyToMemory() {
		return out, nil
	}
	vals, err := boundOutputs(ioBindingPointer(b.b))
	if err != nil {
		return nil, fmt.Errorf("outputs of %s: %w", b.sess.path, err)
	}
	for i, v := range vals {
		if i < len(b.outputs) && b.toMemory[b.outputs[i]] {
			out[b.outputs[i]] = v
			continue
		}
		v.Close()
	}
	return out, nil
}

// Close releases the binding.
func (b *Binding) Close() {
	if b != nil && b.b != nil {
		b.b.Destroy()
		b.b = nil
	}
}
