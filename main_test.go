package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCommands(t *testing.T) {
	out := t.TempDir()
	tests := []struct {
		name   string
		args   []string
		code   int
		output string // in stdout or stderr
	}{
		{"no command", nil, 2, "Usage:"},
		{"unknown command", []string{"fly"}, 2, `unknown command "fly"`},
		{"version", []string{"version"}, 0, "0."},
		{"missing explicit config", []string{"check", "-config", "nope.toml"}, 1, "nope.toml"},
		{"check -permissions", []string{"check", "-permissions"}, 0, "--allow-sub 'paliprompt.v1.* paliprompt'"},
		{"run without files", []string{"run"}, 1, "no files"},
		{"run bad task", []string{"run", "-task", "paint", "x.png"}, 1, `-task "paint"`},
		{"run verify with another task", []string{"run", "-verify", "r.json", "-task", "detect", "x.png"}, 1, "leave out -task detect"},
		{"run verify without the plan", []string{"run", "-out", out, "-verify", "no-such.json", "examples/images/house.png"}, 1, "no-such.json"},
		{"run an example", []string{"run", "-out", out, "examples/requests/layout-two-shapes.json"}, 0, "layout-two-shapes.json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(tt.args, &stdout, &stderr)
			if code != tt.code || !strings.Contains(stdout.String()+stderr.String(), tt.output) {
				t.Errorf("exit %d, want %d; output:\n%s%s", code, tt.code, stdout.String(), stderr.String())
			}
		})
	}
	if _, err := os.Stat(filepath.Join(out, "layout-two-shapes.json")); err != nil {
		t.Error(err)
	}
}
