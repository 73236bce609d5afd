package par

import (
	"sync/atomic"
	"testing"
)

func TestRowsCoversEachRowOnce(t *testing.T) {
	for _, n := range []int{0, 1, 31, 32, 33, 100, 1001} {
		seen := make([]atomic.Int32, n)
		Rows(n, func(y0, y1 int) {
			for y := y0; y < y1; y++ {
				seen[y].Add(1)
			}
		})
		for y := range seen {
			if c := seen[y].Load(); c != 1 {
				t.Fatalf("n=%d: row %d ran %d times", n, y, c)
			}
		}
	}
}
