package plugin

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"paliprompt/core"

	"github.com/BurntSushi/toml"
)

// repoConfig is the config.toml at the repository root.
const repoConfig = "../config.toml"

func noEnv(string) (string, bool) { return "", false }

func envOf(vars map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
}

func writeConfig(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.toml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestRepoConfigIsDefaults: config.toml documents the defaults, so it must
// decode to exactly DefaultConfig and set every key itself.
func TestRepoConfigIsDefaults(t *testing.T) {
	got, err := LoadConfig(repoConfig, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if want := DefaultConfig(); !reflect.DeepEqual(got, want) {
		t.Errorf("config.toml decodes to\n%+v\nwant the defaults\n%+v", got, want)
	}
	var raw map[string]any
	md, err := toml.DecodeFile(repoConfig, &raw)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range ConfigKeys() {
		if !md.IsDefined(strings.Split(key, ".")...) {
			t.Errorf("config.toml does not set %s", key)
		}
	}
}

// TestRepoConfigIsCommented: every key line in config.toml has a comment
// right above it (or on the same line).
func TestRepoConfigIsCommented(t *testing.T) {
	data, err := os.ReadFile(repoConfig)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(data), "\n")
	for i, line := range lines {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, "[") {
			continue
		}
		if i == 0 || !(strings.HasPrefix(strings.TrimSpace(lines[i-1]), "#") || strings.Contains(line, "#")) {
			t.Errorf("config.toml line %d has no comment: %s", i+1, line)
		}
	}
}

func TestLoadConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		toml string
		want []string // substrings of the error
	}{
		{"unknown key", "[nats]\nurll = \"nats://x:4222\"\n", []string{`unknown key "nats.urll"`}},
		{"unknown table", "[natz]\nurl = \"\"\n", []string{`unknown key "natz`}},
		{"wrong type", "[queue]\nsize = \"many\"\n", []string{"queue.size"}},
		{"bad duration", "[queue]\ntimeout = \"soon\"\n", []string{"queue.timeout", `"soon" is not a duration`}},
		{"bad size", "[limits]\nmax_image_bytes = \"lots\"\n", []string{"limits.max_image_bytes", `"lots" is not a size`}},
		{"bad level", "[log]\nlevel = \"loud\"\n", []string{"log.level", `"loud" is not allowed`, "debug, info, warn, error"}},
		{"bad provider", "[model]\nprovider = \"tpu\"\n", []string{"model.provider", "cpu, cuda"}},
		{"port out of range", "[nats.embedded]\nport = 70000\n", []string{"nats.embedded.port", "1..65535"}},
		{"bad url", "[nats]\nurl = \"http://x\"\n", []string{"nats.url", "nats://host:port"}},
		{"two auth methods", "[nats]\nuser = \"a\"\ntoken = \"t\"\n", []string{"set only one of"}},
		{"cert without key", "[nats]\ntls_cert = \"c.pem\"\n", []string{"nats.tls_cert", "set both or neither"}},
		{"queue size", "[queue]\nsize = 0\n", []string{"queue.size", "at least 1"}},
		{"wildcard ready subject", "[events]\nready_subject = \"aiviz.*\"\n", []string{"events.ready_subject", "not a valid subject"}},
		{"duplicate window under two ack waits", "[events]\nack_wait = \"60s\"\nduplicate_window = \"90s\"\n", []string{"events.duplicate_window", "twice events.ack_wait"}},
		{"two problems", "[queue]\nsize = 0\n[log]\nformat = \"xml\"\n", []string{"queue.size", "log.format"}},
		{"syntax", "[queue\n", []string{"config.toml"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := LoadConfig(writeConfig(t, tt.toml), noEnv)
			if err == nil {
				t.Fatal("no error")
			}
			if !errors.Is(err, core.ErrConfig) {
				t.Errorf("error %v does not wrap core.ErrConfig", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestLoadConfigMissingFile(t *testing.T) {
	_, err := LoadConfig(filepath.Join(t.TempDir(), "nope.toml"), noEnv)
	if err == nil || !strings.Contains(err.Error(), "nope.toml") {
		t.Errorf("error %v does not name the missing file", err)
	}
}

func TestLoadConfigPartialFileKeepsDefaults(t *testing.T) {
	cfg, err := LoadConfig(writeConfig(t, "[queue]\nsize = 3\n"), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	want := DefaultConfig()
	want.Queue.Size = 3
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("got %+v, want %+v", cfg, want)
	}
}

func TestEnvOverrides(t *testing.T) {
	path := writeConfig(t, "[nats]\nurl = \"nats://file:4222\"\n")
	cfg, err := LoadConfig(path, envOf(map[string]string{
		"PALIPROMPT_NATS_URL":                  "nats://env:4222",
		"PALIPROMPT_MODEL_DIR":                 "models/pg2",
		"PALIPROMPT_NATS_EMBEDDED_PORT":        "-1",
		"PALIPROMPT_QUEUE_TIMEOUT":             "45s",
		"PALIPROMPT_EVENTS_SUBJECTS":           "a.b.>, c.d",
		"PALIPROMPT_EVENTS_ENABLED":            "false",
		"PALIPROMPT_LIMITS_MAX_MEGAPIXELS":     "12.5",
		"PALIPROMPT_OBJECTS_INLINE_MASK_BYTES": "1MiB",
	}))
	if err != nil {
		t.Fatal(err)
	}
	want := DefaultConfig()
	want.NATS.URL = "nats://env:4222"
	want.Model.Dir = "models/pg2"
	want.NATS.Embedded.Port = -1
	want.Queue.Timeout = Duration(45 * time.Second)
	want.Events.Subjects = []string{"a.b.>", "c.d"}
	want.Events.Enabled = false
	want.Limits.MaxMegapixels = 12.5
	want.Objects.InlineMaskBytes = 1 << 20
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("got %+v\nwant %+v", cfg, want)
	}
}

func TestEnvOverrideErrors(t *testing.T) {
	tests := []struct {
		env  map[string]string
		want []string
	}{
		{map[string]string{"PALIPROMPT_QUEUE_SIZE": "ten"}, []string{"PALIPROMPT_QUEUE_SIZE", "queue.size", "not a whole number"}},
		{map[string]string{"PALIPROMPT_EVENTS_ENABLED": "yes please"}, []string{"events.enabled", "true or false"}},
		{map[string]string{"PALIPROMPT_QUEUE_SIZE": "0"}, []string{"queue.size", "at least 1"}},
	}
	for _, tt := range tests {
		_, err := LoadConfig("", envOf(tt.env))
		if err == nil || !errors.Is(err, core.ErrConfig) {
			t.Fatalf("env %v: error %v", tt.env, err)
		}
		for _, w := range tt.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("env %v: error %q does not mention %q", tt.env, err, w)
			}
		}
	}
}

func TestEnvName(t *testing.T) {
	for key, want := range map[string]string{
		"nats.url":           "PALIPROMPT_NATS_URL",
		"model.dir":          "PALIPROMPT_MODEL_DIR",
		"data_dir":           "PALIPROMPT_DATA_DIR",
		"nats.embedded.port": "PALIPROMPT_NATS_EMBEDDED_PORT",
	} {
		if got := EnvName(key); got != want {
			t.Errorf("EnvName(%q) = %q, want %q", key, got, want)
		}
	}
}

func TestByteSizeAndDuration(t *testing.T) {
	sizes := map[string]ByteSize{"0": 0, "1024": 1024, "8MiB": 8 << 20, "512 KiB": 512 << 10, "1GB": 1e9, "3B": 3}
	for text, want := range sizes {
		var b ByteSize
		if err := b.UnmarshalText([]byte(text)); err != nil || b != want {
			t.Errorf("ByteSize(%q) = %d, %v; want %d", text, b, err, want)
		}
	}
	for _, bad := range []string{"", "-1", "1.5MiB", "MiB", "8 parsecs"} {
		var b ByteSize
		if err := b.UnmarshalText([]byte(bad)); err == nil {
			t.Errorf("ByteSize(%q) = %d, want an error", bad, b)
		}
	}
	if got := ByteSize(8 << 20).String(); got != "8MiB" {
		t.Errorf("String = %q", got)
	}
	var d Duration
	if err := d.UnmarshalText([]byte("1m30s")); err != nil || d != Duration(90*time.Second) {
		t.Errorf("Duration = %v, %v", d, err)
	}
}
