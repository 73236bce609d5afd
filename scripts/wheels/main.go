// Command wheels installs the shared libraries of pinned PyPI wheels into a
// folder, without Python: it asks the package index (PEP 691 JSON, or the
// PEP 503 HTML page) where each pinned file is, downloads it with a
// progress bar, checks its size and SHA-256, and unpacks only the members
// the pin names. scripts/setup.sh runs it for ONNX Runtime:
//
//	go run ./scripts/wheels -set cpu -dest .deps/onnxruntime
//	go run ./scripts/wheels -set gpu -dest .deps/onnxruntime-gpu
//
// It is idempotent: a folder whose INSTALLED file lists the same wheels and
// still holds every unpacked file is left alone. The index is
// $PIP_INDEX_URL when set (a mirror, as pip would use), else PyPI.
package main

import (
	"archive/zip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
)

// wheel is one pinned wheel file.
type wheel struct {
	Project, Version string
	File             string // the wheel's file name on the index
	Size             int64
	SHA256           string
	Keep             []member
}

// member selects wheel members by a path.Match pattern; As renames a
// single match (libonnxruntime.so.1.24.4 becomes its soname).
type member struct {
	Glob string
	As   string
}

const (
	defaultIndex = "https://pypi.org/simple"
	stampFile    = "INSTALLED"
)

func main() {
	set := flag.String("set", "", "which libraries: cpu or gpu")
	dest := flag.String("dest", "", "folder to install into")
	flag.Parse()
	wheels, ok := sets[*set]
	if !ok || *dest == "" {
		fmt.Fprintln(os.Stderr, "usage: wheels -set cpu|gpu -dest DIR")
		os.Exit(2)
	}
	index := os.Getenv("PIP_INDEX_URL")
	if index == "" {
		index = defaultIndex
	}
	if err := install(wheels, *dest, index, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "setup: %v\n", err)
		os.Exit(1)
	}
}

// install puts the kept members of every wheel into dest, unless an
// earlier run already did.
func install(wheels []wheel, dest, index string, log io.Writer) error {
	if installed(wheels, dest) {
		return nil
	}
	var total int64
	for _, w := range wheels {
		total += w.Size
	}
	fmt.Fprintf(log, "setup: downloading %d wheel(s) from %s, %s in all, into %s\n", len(wheels), index, megabytes(total), dest)
	tmp := filepath.Join(dest, ".download")
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return err
	}
	client := &http.Client{Timeout: 30 * time.Minute}
	var files []string
	for i, w := range wheels {
		src, err := locate(client, index, w)
		if err != nil {
			return err
		}
		file := filepath.Join(tmp, w.File)
		label := fmt.Sprintf("[%d/%d] %s %s", i+1, len(wheels), w.Project, w.Version)
		if err := download(client, src, file, w, label, log); err != nil {
			return err
		}
		names, err := unpack(file, dest, w.Keep)
		if err != nil {
			return fmt.Errorf("unpack %s: %w", w.File, err)
		}
		files = append(files, names...)
		os.Remove(file) // the wheel is no longer needed: only its libraries stay
	}
	os.RemoveAll(tmp)
	if err := os.WriteFile(filepath.Join(dest, stampFile), []byte(stamp(wheels)+strings.Join(files, "\n")+"\n"), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(log, "setup: %s holds %s of libraries\n", dest, megabytes(folderSize(dest)))
	return nil
}

// stamp lists the wheels of an install; the INSTALLED file holds it, then
// a blank line, then the files unpacked.
func stamp(wheels []wheel) string {
	var b strings.Builder
	for _, w := range wheels {
		fmt.Fprintf(&b, "%s %s\n", w.File, w.SHA256)
	}
	return b.String() + "\n"
}

// installed: the stamp lists exactly these wheels and no unpacked file is
// missing (a half-deleted folder is installed again).
func installed(wheels []wheel, dest string) bool {
	b, err := os.ReadFile(filepath.Join(dest, stampFile))
	files, ok := strings.CutPrefix(string(b), stamp(wheels))
	if err != nil || !ok {
		return false
	}
	for _, f := range strings.Fields(files) {
		if _, err := os.Stat(filepath.Join(dest, f)); err != nil {
			return false
		}
	}
	return true
}

// indexFile is a file of a PEP 691 JSON project page.
type indexFile struct {
	Filename string            `json:"filename"`
	URL      string            `json:"url"`
	Hashes   map[string]string `json:"hashes"`
}

// locate asks the index for the project's page and returns the pinned
// file's URL.
func locate(client *http.Client, index string, w wheel) (string, error) {
	page := strings.TrimSuffix(index, "/") + "/" + w.Project + "/"
	req, err := http.NewRequest(http.MethodGet, page, nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Accept", "application/vnd.pypi.simple.v1+json, text/html;q=0.1")
	resp, err := client.Do(req)
	if err != nil {
		return "", fmt.Errorf("package index: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("package index %s: %s", page, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return "", fmt.Errorf("package index %s: %w", page, err)
	}
	files, err := parseIndex(resp.Header.Get("Content-Type"), body)
	if err != nil {
		return "", fmt.Errorf("package index %s: %w", page, err)
	}
	i := slices.IndexFunc(files, func(f indexFile) bool { return f.Filename == w.File })
	if i < 0 {
		return "", fmt.Errorf("package index %s does not list %s", page, w.File)
	}
	if h := files[i].Hashes["sha256"]; h != "" && h != w.SHA256 {
		return "", fmt.Errorf("package index lists %s with SHA-256 %s, pinned %s", w.File, h, w.SHA256)
	}
	base, err := url.Parse(page)
	if err != nil {
		return "", err
	}
	ref, err := url.Parse(files[i].URL)
	if err != nil {
		return "", fmt.Errorf("package index: URL of %s: %w", w.File, err)
	}
	ref.Fragment = ""
	return base.ResolveReference(ref).String(), nil
}

// anchor is a file link of a PEP 503 HTML page.
var anchor = regexp.MustCompile(`<a\s[^>]*href="([^"]+)"[^>]*>([^<]+)</a>`)

// parseIndex reads a project page: PEP 691 JSON, or PEP 503 HTML from an
// index that serves only that.
func parseIndex(contentType string, body []byte) ([]indexFile, error) {
	if strings.Contains(contentType, "json") {
		var page struct {
			Files []indexFile `json:"files"`
		}
		if err := json.Unmarshal(body, &page); err != nil {
			return nil, fmt.Errorf("JSON project page: %w", err)
		}
		return page.Files, nil
	}
	var files []indexFile
	for _, m := range anchor.FindAllSubmatch(body, -1) {
		href := html.UnescapeString(string(m[1]))
		f := indexFile{Filename: strings.TrimSpace(html.UnescapeString(string(m[2]))), URL: href, Hashes: map[string]string{}}
		if _, frag, ok := strings.Cut(href, "#sha256="); ok {
			f.Hashes["sha256"] = frag
		}
		files = append(files, f)
	}
	if len(files) == 0 {
		return nil, errors.New("no files on the project page")
	}
	return files, nil
}

// download fetches src into file with a progress bar, checking the pinned
// size and SHA-256.
func download(client *http.Client, src, file string, w wheel, label string, log io.Writer) error {
	resp, err := client.Get(src)
	if err != nil {
		return fmt.Errorf("download %s: %w", w.File, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("download %s: %s", w.File, resp.Status)
	}
	out, err := os.Create(file)
	if err != nil {
		return err
	}
	defer out.Close()
	bar := progressbar.NewOptions64(w.Size, progressbar.OptionSetWriter(log), progressbar.OptionSetDescription(label),
		progressbar.OptionShowBytes(true), progressbar.OptionThrottle(250*time.Millisecond),
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(log) }))
	sum := sha256.New()
	n, err := io.Copy(io.MultiWriter(out, sum, progress{bar}), io.LimitReader(resp.Body, w.Size+1))
	if err != nil {
		return fmt.Errorf("download %s: %w", w.File, err)
	}
	if n != w.Size {
		return fmt.Errorf("download %s: %d bytes, pinned %d", w.File, n, w.Size)
	}
	if got := hex.EncodeToString(sum.Sum(nil)); got != w.SHA256 {
		return fmt.Errorf("download %s: SHA-256 %s, pinned %s", w.File, got, w.SHA256)
	}
	return out.Close()
}

// unpack writes the members keep selects into dest (flat, executable),
// each through a temporary file so that a broken run leaves no half file,
// and returns their names.
func unpack(file, dest string, keep []member) ([]string, error) {
	z, err := zip.OpenReader(file)
	if err != nil {
		return nil, err
	}
	defer z.Close()
	var names []string
	for _, m := range keep {
		found := 0
		for _, f := range z.File {
			if ok, _ := path.Match(m.Glob, f.Name); !ok {
				continue
			}
			found++
			name := path.Base(f.Name)
			if m.As != "" {
				name = m.As
			}
			if err := extract(f, filepath.Join(dest, name)); err != nil {
				return nil, err
			}
			names = append(names, name)
		}
		if found == 0 || (m.As != "" && found > 1) {
			return nil, fmt.Errorf("%d members match %s", found, m.Glob)
		}
	}
	return names, nil
}

func extract(f *zip.File, to string) error {
	r, err := f.Open()
	if err != nil {
		return fmt.Errorf("%s: %w", f.Name, err)
	}
	defer r.Close()
	tmp := to + ".part"
	out, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, r); err != nil {
		out.Close()
		os.Remove(tmp)
		return fmt.Errorf("%s: %w", f.Name, err)
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, to)
}

// progress feeds a progress bar and ignores its complaints (a file larger
// than pinned is reported by download itself).
type progress struct{ bar *progressbar.ProgressBar }

func (p progress) Write(b []byte) (int, error) {
	p.bar.Add(len(b))
	return len(b), nil
}

func folderSize(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return n
}

func megabytes(n int64) string { return fmt.Sprintf("%.0f MB", float64(n)/1e6) }
