package tmpcmp

import (
	"context"
	"fmt"
	"testing"

	"github.com/archy-node/archy/sim/calibrate"
	"github.com/archy-node/archy/sim/model"
)

func TestModelOnly(t *testing.T) {
	for _, n := range []int{16, 24, 32, 48, 64} {
		sc := calibrate.FlashCrowd(n, 4)
		sc.SharedCores = 2
		var sum, d float64
		var cnt int
		for _, es := range []uint64{1, 2} {
			net := sc.Draw(es)
			for k := uint64(1); k <= 8; k++ {
				m, _ := model.RunOn(context.Background(), sc, es<<32|k, net)
				f := m.Figures()
				sum += f.CompletionP50
				d += f.DiscoveryP50
				cnt++
			}
		}
		fmt.Printf("MODEL %d p50 %.2f disc %.4f\n", n, sum/float64(cnt), d/float64(cnt))
	}
}
