package main

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// makeWheel builds a wheel-like zip with the given members.
func makeWheel(t *testing.T, members map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	z := zip.NewWriter(&buf)
	for name, body := range members {
		w, err := z.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(w, body)
	}
	if err := z.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func pin(file string, data []byte, keep ...member) wheel {
	sum := sha256.Sum256(data)
	return wheel{Project: "demo-lib", Version: "1.0", File: file, Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:]), Keep: keep}
}

// index serves a project page (JSON or HTML) and the wheel files, and
// counts the downloads.
func index(t *testing.T, asJSON bool, files map[string][]byte) (*httptest.Server, *atomic.Int32) {
	var downloads atomic.Int32
	mux := http.NewServeMux()
	mux.HandleFunc("/simple/demo-lib/", func(w http.ResponseWriter, r *http.Request) {
		if asJSON {
			w.Header().Set("Content-Type", "application/vnd.pypi.simple.v1+json")
			var parts []string
			for name, data := range files {
				sum := sha256.Sum256(data)
				parts = append(parts, fmt.Sprintf(`{"filename": %q, "url": "../../files/%s", "hashes": {"sha256": %q}}`, name, name, hex.EncodeToString(sum[:])))
			}
			fmt.Fprintf(w, `{"meta": {"api-version": "1.1"}, "name": "demo-lib", "files": [%s]}`, strings.Join(parts, ","))
			return
		}
		w.Header().Set("Content-Type", "text/html")
		for name, data := range files {
			sum := sha256.Sum256(data)
			fmt.Fprintf(w, "<a href=\"/files/%s#sha256=%x\" data-requires-python=\"&gt;=3.8\">%s</a><br/>\n", name, sum, name)
		}
	})
	mux.HandleFunc("/files/", func(w http.ResponseWriter, r *http.Request) {
		downloads.Add(1)
		w.Write(files[filepath.Base(r.URL.Path)])
	})
	s := httptest.NewServer(mux)
	t.Cleanup(s.Close)
	return s, &downloads
}

func TestInstall(t *testing.T) {
	const file = "demo_lib-1.0-py3-none-manylinux_2_27_x86_64.whl"
	data := makeWheel(t, map[string]string{
		"demo/lib/libdemo.so.1.0": "core",
		"demo/lib/libplug_a.so.1": "a",
		"demo/lib/libplug_b.so.1": "b",
		"demo/__init__.py":        "python, not kept",
	})
	w := pin(file, data, member{Glob: "demo/lib/libdemo.so.1.0", As: "libdemo.so.1"}, member{Glob: "demo/lib/libplug_*.so.1"})
	for _, asJSON := range []bool{true, false} {
		t.Run(fmt.Sprintf("json=%v", asJSON), func(t *testing.T) {
			s, downloads := index(t, asJSON, map[string][]byte{file: data})
			dest := t.TempDir()
			var log bytes.Buffer
			if err := install([]wheel{w}, dest, s.URL+"/simple", &log); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(log.String(), "downloading 1 wheel(s)") || !strings.Contains(log.String(), "MB in all") {
				t.Errorf("no size announced before the download:\n%s", log.String())
			}
			entries, _ := os.ReadDir(dest)
			var names []string
			for _, e := range entries {
				names = append(names, e.Name())
			}
			if got, want := strings.Join(names, " "), "INSTALLED libdemo.so.1 libplug_a.so.1 libplug_b.so.1"; got != want {
				t.Errorf("installed %q, want %q", got, want)
			}
			if b, _ := os.ReadFile(filepath.Join(dest, "libdemo.so.1")); string(b) != "core" {
				t.Errorf("libdemo.so.1 holds %q", b)
			}
			// Idempotent: a second run downloads nothing; a removed file is
			// installed again.
			if err := install([]wheel{w}, dest, s.URL+"/simple", io.Discard); err != nil || downloads.Load() != 1 {
				t.Errorf("second run: %v, %d downloads", err, downloads.Load())
			}
			os.Remove(filepath.Join(dest, "libplug_b.so.1"))
			if err := install([]wheel{w}, dest, s.URL+"/simple", io.Discard); err != nil || downloads.Load() != 2 {
				t.Errorf("after removing a file: %v, %d downloads", err, downloads.Load())
			}
		})
	}
}

func TestInstallRejects(t *testing.T) {
	const file = "demo_lib-1.0-py3-none-any.whl"
	data := makeWheel(t, map[string]string{"demo/libdemo.so": "x"})
	good := pin(file, data, member{Glob: "demo/libdemo.so"})
	s, _ := index(t, true, map[string][]byte{file: data})
	for _, c := range []struct {
		name string
		w    func(wheel) wheel
		want string
	}{
		{"other hash", func(w wheel) wheel { w.SHA256 = strings.Repeat("0", 64); return w }, "pinned"},
		{"other size", func(w wheel) wheel { w.Size--; return w }, "bytes, pinned"},
		{"not listed", func(w wheel) wheel { w.File = "demo_lib-2.0-py3-none-any.whl"; return w }, "does not list"},
		{"member missing", func(w wheel) wheel { w.Keep = []member{{Glob: "demo/libother.so"}}; return w }, "0 members match demo/libother.so"},
		{"project missing", func(w wheel) wheel { w.Project = "other"; return w }, "404"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dest := t.TempDir()
			err := install([]wheel{c.w(good)}, dest, s.URL+"/simple", io.Discard)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want one containing %q", err, c.want)
			}
			if _, err := os.Stat(filepath.Join(dest, stampFile)); err == nil {
				t.Error("a failed install wrote its stamp")
			}
		})
	}
}

// TestPins: every pin names its own project and version, and both sets use
// one ONNX Runtime version.
func TestPins(t *testing.T) {
	versions := map[string]string{}
	for set, wheels := range sets {
		for _, w := range wheels {
			prefix := strings.ReplaceAll(w.Project, "-", "_") + "-" + w.Version + "-"
			if !strings.HasPrefix(w.File, prefix) || !strings.HasSuffix(w.File, ".whl") {
				t.Errorf("%s: file %s is not %s*.whl", set, w.File, prefix)
			}
			if len(w.SHA256) != 64 || w.Size <= 0 || len(w.Keep) == 0 {
				t.Errorf("%s: %s pin incomplete", set, w.File)
			}
			if strings.HasPrefix(w.Project, "onnxruntime") {
				versions[set] = w.Version
			}
		}
	}
	if versions["cpu"] != ortVersion || versions["gpu"] != ortVersion {
		t.Errorf("ONNX Runtime versions %v, want %s in both sets", versions, ortVersion)
	}
}
