package plugin

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Duration is a time.Duration written in config.toml as a Go duration
// string ("30s", "2m30s").
type Duration time.Duration

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(text []byte) error {
	v, err := time.ParseDuration(strings.TrimSpace(string(text)))
	if err != nil {
		return fmt.Errorf("%q is not a duration: use a number with a unit, like \"30s\" or \"2m\"", text)
	}
	*d = Duration(v)
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// String returns the duration as Go writes it.
func (d Duration) String() string { return time.Duration(d).String() }

// ByteSize is a number of bytes written in config.toml as an integer or
// as a string with a unit ("512KiB", "8MiB", "1GB").
type ByteSize int64

var byteUnits = []struct {
	suffix string
	scale  int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30},
	{"KB", 1000}, {"MB", 1000 * 1000}, {"GB", 1000 * 1000 * 1000},
	{"B", 1},
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (b *ByteSize) UnmarshalText(text []byte) error {
	s := strings.TrimSpace(string(text))
	scale := int64(1)
	for _, u := range byteUnits {
		if strings.HasSuffix(s, u.suffix) {
			s, scale = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.scale
			break
		}
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < 0 || v > (1<<62)/scale {
		return fmt.Errorf("%q is not a size: use a whole number of bytes or a unit, like \"512KiB\" or \"8MiB\"", text)
	}
	*b = ByteSize(v * scale)
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (b ByteSize) MarshalText() ([]byte, error) { return []byte(b.String()), nil }

// String writes the size with the largest binary unit that divides it.
func (b ByteSize) String() string {
	for i := 2; i >= 0; i-- {
		u := byteUnits[i]
		if b != 0 && int64(b)%u.scale == 0 {
			return fmt.Sprintf("%d%s", int64(b)/u.scale, u.suffix)
		}
	}
	return fmt.Sprintf("%dB", int64(b))
}
