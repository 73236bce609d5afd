package cudabin

import (
	"debug/elf"
	"fmt"
	"os"
	"path/filepath"
)

// LoadOrder returns the libraries of dir that root (a file in dir) needs,
// directly or through one another (DT_NEEDED), in an order where each
// library comes after those it needs; root itself comes last. Needed
// libraries that dir lacks (the C library, or CUDA libraries the system
// provides) are left to the dynamic loader and not listed.
func LoadOrder(dir, root string) ([]string, error) {
	var order []string
	state := map[string]int{} // 1: being visited, 2: done
	var visit func(name string) error
	visit = func(name string) error {
		if state[name] != 0 {
			return nil // done, or a cycle: the loader resolves those itself
		}
		state[name] = 1
		path := filepath.Join(dir, name)
		f, err := elf.Open(path)
		if err != nil {
			return fmt.Errorf("read %s: %w", path, err)
		}
		needed, err := f.ImportedLibraries()
		f.Close()
		if err != nil {
			return fmt.Errorf("read %s: needed libraries: %w", path, err)
		}
		for _, n := range needed {
			if _, err := os.Stat(filepath.Join(dir, n)); err == nil {
				if err := visit(n); err != nil {
					return err
				}
			}
		}
		state[name] = 2
		order = append(order, path)
		return nil
	}
	if err := visit(root); err != nil {
		return nil, err
	}
	return order, nil
}
