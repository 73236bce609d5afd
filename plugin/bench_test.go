package plugin

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// BenchmarkLayoutRequests measures paliprompt.v1.layout request/reply over
// the plugin's own embedded NATS server (in-process, JetStream on), from
// one client connection: requests/s, and p50/p99 latency per request.
//
//	go test ./plugin -run '^$' -bench LayoutRequests -benchtime 2000x
func BenchmarkLayoutRequests(b *testing.B) {
	cfg := testConfig(b, "")
	cfg.NATS.Embedded.Port = -1
	cfg.Queue.Size = 64
	r := startPlugin(b, cfg, Deps{Log: discardLogger()})
	nc, err := nats.Connect(r.p.URL())
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	body := jsonBody(b, map[string]any{
		"width": 1024, "height": 768,
		"caption": "a house with a red roof next to a tree under the sun",
		"detect": "<loc0290><loc0256><loc0853><loc0588> house ; <loc0494><loc0691><loc0853><loc0844> tree ; " +
			"<loc0077><loc0812><loc0264><loc0953> sun",
	})
	for _, clients := range []int{1, 8} {
		b.Run(fmt.Sprintf("concurrency-%d", clients), func(b *testing.B) {
			latencies := make([]time.Duration, b.N)
			var next atomic.Int64
			var failed atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			start := time.Now()
			for range clients {
				wg.Go(func() {
					for {
						i := int(next.Add(1)) - 1
						if i >= b.N {
							return
						}
						t := time.Now()
						m, err := nc.Request("paliprompt.v1.layout", body, 10*time.Second)
						latencies[i] = time.Since(t)
						if code, _ := errorOfMsg(m, err); code != 0 {
							failed.Add(1)
						}
					}
				})
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			if n := failed.Load(); n > 0 {
				b.Fatalf("%d of %d requests failed", n, b.N)
			}
			slices.Sort(latencies)
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "req/s")
			b.ReportMetric(ms(latencies[len(latencies)/2]), "p50-ms")
			b.ReportMetric(ms(latencies[len(latencies)*99/100]), "p99-ms")
		})
	}
}

func errorOfMsg(m *nats.Msg, err error) (int, string) {
	if err != nil {
		return -1, err.Error()
	}
	return errorOf(m)
}
