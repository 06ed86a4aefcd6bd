package trust

import (
	"os"
	"strconv"
	"testing"
)

func TestDebugTune(t *testing.T) {
	if os.Getenv("TUNE") == "" {
		t.Skip()
	}
	f := func(k string, d float64) float64 {
		if v, err := strconv.ParseFloat(os.Getenv(k), 64); err == nil {
			return v
		}
		return d
	}
	cfg := HarnessConfig{AttackEdges: []int{100, 300, 1000}, Seeds: []int64{1}, Owners: 60,
		Params: Params{Alpha: f("ALPHA", 0.3), Hops: int(f("HOPS", 5))},
		Policy: Policy{Floor: f("FLOOR", 1e-5), Trim: int(f("TRIM", 1))}}
	t.Logf("\n%s", Table(RunHarness(cfg)))
}
