package cudabin

import "fmt"

// Support is what a library offers a device of one compute capability,
// counted over its fatbins: each fatbin must have code the device can run
// for its kernels to work.
type Support struct {
	Major, Minor int
	Fatbins      int
	// Native counts fatbins with machine code the device runs as it is.
	Native int
	// JIT counts fatbins without such code but with PTX the driver can
	// compile for the device when the library loads (slow the first time).
	JIT int
	// Missing counts fatbins with neither: their kernels fail on the device.
	Missing int
}

// Runs reports whether machine code of c runs on compute capability
// major.minor: the same major version and a minor version no higher, or
// exactly that capability for arch-specific (sm_90a) code.
func (c Code) Runs(major, minor int) bool {
	if c.Kind != ELF {
		return false
	}
	if c.Specific {
		return c.SM == major*10+minor
	}
	return c.SM/10 == major && c.SM%10 <= minor
}

// Compiles reports whether c is PTX the driver can compile for compute
// capability major.minor (PTX of an older or equal architecture).
func (c Code) Compiles(major, minor int) bool {
	return c.Kind == PTX && c.SM <= major*10+minor
}

// For counts what the library offers compute capability major.minor.
func (l *Library) For(major, minor int) Support {
	s := Support{Major: major, Minor: minor, Fatbins: len(l.Fatbins)}
	for _, fb := range l.Fatbins {
		native, jit := false, false
		for _, c := range fb.Codes {
			native = native || c.Runs(major, minor)
			jit = jit || c.Compiles(major, minor)
		}
		switch {
		case native:
			s.Native++
		case jit:
			s.JIT++
		default:
			s.Missing++
		}
	}
	return s
}

// OK reports whether every fatbin has code the device can run or compile.
func (s Support) OK() bool { return s.Missing == 0 }

// String says it in a sentence: "machine code for sm_70 in all 200
// fatbins".
func (s Support) String() string {
	sm := fmt.Sprintf("sm_%d%d", s.Major, s.Minor)
	switch {
	case s.Fatbins == 0:
		return "no GPU code"
	case s.Native == s.Fatbins:
		return fmt.Sprintf("machine code for %s in all %d fatbins", sm, s.Fatbins)
	case s.Missing == 0:
		return fmt.Sprintf("machine code for %s in %d of %d fatbins, PTX to compile for it at load time (slow the first time) in %d",
			sm, s.Native, s.Fatbins, s.JIT)
	}
	return fmt.Sprintf("no code for %s in %d of %d fatbins (machine code in %d, PTX in %d): its kernels would fail on this device",
		sm, s.Missing, s.Fatbins, s.Native, s.JIT)
}
