// Command aroundmodel measures the time a paliprompt binary spends around
// the model, over NATS as an app sees it (bench/around_model.sh runs it
// for two builds side by side):
//
//   - generate requests with raw image bytes and named objects: the total
//     of each reply's timings and its non-model part, the total minus the
//     ONNX Runtime runs of the vision encoder and the decoder (the median
//     of -runs requests after one warm-up);
//   - layout requests (PaliGemma text in) from 1 and from 8 concurrent
//     clients: requests per second, p50 and p99 latency.
//
// It starts `BIN serve` with an embedded NATS server on a free port and a
// temporary data folder, and prints one JSON object.
//
//	go run ./bench/aroundmodel -bin bin/paliprompt -config config.toml -image big.jpg=red circle;blue square
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
)

// images collects -image FILE=OBJECTS flags.
type images []string

func (i *images) String() string     { return strings.Join(*i, ", ") }
func (i *images) Set(v string) error { *i = append(*i, v); return nil }

func main() {
	bin := flag.String("bin", "bin/paliprompt", "the paliprompt binary to measure")
	config := flag.String("config", "config.toml", "its configuration")
	modelDir := flag.String("model", "", "model folder (PALIPROMPT_MODEL_DIR); empty: the config's")
	runs := flag.Int("runs", 5, "generate requests per image after a warm-up")
	layoutN := flag.Int("layout-requests", 1000, "layout requests per concurrency")
	var imgs images
	flag.Var(&imgs, "image", "FILE=OBJECTS (objects separated by ';'); repeatable")
	flag.Parse()
	if err := run(*bin, *config, *modelDir, imgs, *runs, *layoutN); err != nil {
		fmt.Fprintln(os.Stderr, "aroundmodel:", err)
		os.Exit(1)
	}
}

func run(bin, config, modelDir string, imgs images, runs, layoutN int) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	data, err := os.MkdirTemp("", "aroundmodel-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(data)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "serve", "-config", config)
	cmd.Env = append(os.Environ(), fmt.Sprintf("PALIPROMPT_NATS_EMBEDDED_PORT=%d", port), "PALIPROMPT_DATA_DIR="+data,
		"PALIPROMPT_LOG_LEVEL=warn", "PALIPROMPT_NATS_URL=", "PALIPROMPT_QUEUE_SIZE=64",
		"PALIPROMPT_NATS_EMBEDDED_MAX_PAYLOAD=8MiB")
	if modelDir != "" {
		cmd.Env = append(cmd.Env, "PALIPROMPT_MODEL_DIR="+modelDir)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() { _ = cmd.Process.Signal(os.Interrupt); _ = cmd.Wait() }()
	nc, err := waitForService(fmt.Sprintf("nats://127.0.0.1:%d", port))
	if err != nil {
		return err
	}
	defer nc.Close()
	out := map[string]any{"binary": bin}
	for _, spec := range imgs {
		file, objects, _ := strings.Cut(spec, "=")
		res, err := measureGenerate(nc, file, objects, runs)
		if err != nil {
			return fmt.Errorf("%s: %w", file, err)
		}
		out[file] = res
	}
	for _, clients := range []int{1, 8} {
		res, err := measureLayout(nc, clients, layoutN)
		if err != nil {
			return err
		}
		out[fmt.Sprintf("layout-%d", clients)] = res
	}
	return json.NewEncoder(os.Stdout).Encode(out)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// waitForService connects and waits until the layout endpoint answers.
func waitForService(url string) (*nats.Conn, error) {
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		nc, err := nats.Connect(url)
		if err == nil {
			if _, err = nc.Request("paliprompt.v1.layout", []byte(`{"width": 8, "height": 8}`), 5*time.Second); err == nil {
				return nc, nil
			}
			nc.Close()
		}
		time.Sleep(200 * time.Millisecond)
	}
	return nil, errors.New("the service did not come up within 2 minutes")
}

// timing is a reply's timing entry, old (flat) or new (with parts).
type timing struct {
	Stage string   `json:"stage"`
	MS    float64  `json:"ms"`
	Parts []timing `json:"parts"`
}

// modelMS adds up the ONNX Runtime runs of the vision encoder and the
// decoder: named parts in the new timings, the "vision" and "generate"
// stages in the timings before them (which include the generation loop's
// own work: that understates the old non-model time).
func modelMS(ts []timing) float64 {
	sum := 0.0
	for _, t := range ts {
		switch {
		case t.Stage == "onnx vision_encoder" || strings.HasPrefix(t.Stage, "onnx decoder"):
			sum += t.MS
		case len(t.Parts) > 0:
			sum += modelMS(t.Parts)
		case t.Stage == "vision" || strings.HasPrefix(t.Stage, "generate "):
			sum += t.MS
		}
	}
	return sum
}

func measureGenerate(nc *nats.Conn, file, objects string, runs int) (map[string]any, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	msg := &nats.Msg{Subject: "paliprompt.v1.generate", Data: data, Header: nats.Header{}}
	if objects != "" {
		msg.Header.Set("Paliprompt-Objects", objects)
	}
	var totals, nonModel []float64
	var last []timing
	objs := 0
	for i := range runs + 1 {
		m, err := nc.RequestMsg(msg, 5*time.Minute)
		if err != nil {
			return nil, err
		}
		if code := m.Header.Get("Nats-Service-Error-Code"); code != "" {
			return nil, fmt.Errorf("error %s: %s", code, m.Header.Get("Nats-Service-Error"))
		}
		var reply struct {
			Objects []json.RawMessage `json:"objects"`
			Timings []timing          `json:"timings"`
		}
		if err := json.Unmarshal(m.Data, &reply); err != nil {
			return nil, err
		}
		if i == 0 {
			continue // warm-up
		}
		total := 0.0
		for _, t := range reply.Timings {
			if t.Stage == "total" {
				total = t.MS
			}
		}
		totals = append(totals, total)
		nonModel = append(nonModel, total-modelMS(reply.Timings))
		last, objs = reply.Timings, len(reply.Objects)
	}
	return map[string]any{"objects": objs, "total_ms": median(totals), "non_model_ms": median(nonModel), "timings": last}, nil
}

func measureLayout(nc *nats.Conn, clients, n int) (map[string]float64, error) {
	body := []byte(`{"width": 1024, "height": 768,
		"caption": "a house with a red roof next to a tree under the sun",
		"detect": "<loc0290><loc0256><loc0853><loc0588> house ; <loc0494><loc0691><loc0853><loc0844> tree ; <loc0077><loc0812><loc0264><loc0953> sun"}`)
	latencies := make([]float64, n)
	var next, failed atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range clients {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				t := time.Now()
				m, err := nc.Request("paliprompt.v1.layout", body, 30*time.Second)
				latencies[i] = float64(time.Since(t).Microseconds()) / 1e3
				if err != nil || m.Header.Get("Nats-Service-Error-Code") != "" {
					failed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if f := failed.Load(); f > 0 {
		return nil, fmt.Errorf("%d of %d layout requests failed", f, n)
	}
	slices.Sort(latencies)
	return map[string]float64{"req_per_s": float64(n) / elapsed.Seconds(), "p50_ms": latencies[n/2], "p99_ms": latencies[n*99/100]}, nil
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}
