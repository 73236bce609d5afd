// Package par splits image work over the CPUs.
package par

import (
	"runtime"
	"sync"
)

// Rows runs fn on contiguous chunks of rows 0..n, one per available CPU;
// a job of fewer than 32 rows runs inline (not worth a goroutine).
func Rows(n int, fn func(y0, y1 int)) {
	workers := min(runtime.GOMAXPROCS(0), n/16)
	if workers <= 1 {
		fn(0, n)
		return
	}
	chunk := (n + workers - 1) / workers
	var wg sync.WaitGroup
	for y0 := 0; y0 < n; y0 += chunk {
		wg.Go(func() { fn(y0, min(y0+chunk, n)) })
	}
	wg.Wait()
}
