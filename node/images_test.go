package node

import (
	"errors"
	"testing"

	"github.com/archy-node/archy/cas"
)

// An image whose manifest pins no archive size is not fetched from the
// swarm: nothing would bound the fetch.
func TestSwarmImageNeedsPinnedSize(t *testing.T) {
	sum := cas.Sum([]byte("an image archive")).String()
	for _, size := range []int64{0, -1} {
		if _, err := (swarmImages{}).FetchArchive(t.Context(), sum, size, nil); !errors.Is(err, ErrImageUnsized) {
			t.Fatalf("size %d: err %v, want ErrImageUnsized", size, err)
		}
	}
}
