package grounding

import (
	"runtime"
	"sync"
)

// parallelRows splits rows 0..n into contiguous chunks and runs fn on them
// concurrently, one chunk per available CPU. Small jobs run inline.
func parallelRows(n int, fn func(y0, y1 int)) {
	workers := min(runtime.GOMAXPROCS(0), n/16)
	if workers <= 1 {
		fn(0, n)
		return
	}
	var wg sync.WaitGroup
	chunk := (n + workers - 1) / workers
	for y0 := 0; y0 < n; y0 += chunk {
		wg.Add(1)
		go func(y0, y1 int) {
			defer wg.Done()
			fn(y0, y1)
		}(y0, min(y0+chunk, n))
	}
	wg.Wait()
}
