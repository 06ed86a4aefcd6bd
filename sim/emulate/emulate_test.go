package emulate

import (
	"errors"
	"log/slog"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/archy-node/archy/sim/report"
	"github.com/archy-node/archy/sim/scenario"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// libp2p and the DHT keep a few process-wide workers.
		goleak.IgnoreAnyFunction("github.com/ipfs/go-log/v2/writer.(*MirrorWriter).logRoutine"),
		goleak.IgnoreAnyFunction("github.com/libp2p/go-cidranger/net.(*network).Covers"),
		goleak.IgnoreTopFunction("go.opencensus.io/stats/view.(*worker).start"),
	)
}

// crowdScenario is a small flash crowd: 16 honest nodes (the publisher's
// uplink 4 MiB/s, the others' 2 to 8 MiB/s) fetch a 4 MiB image of 2
// layers within 2 s of discovering it, while a corrupting peer and a
// trickling peer also serve it.
const crowdScenario = `
name: ci-flash-crowd
nodes: 16
links:
  latency: {kind: uniform, min: 0.002, max: 0.02}
  uplink: {kind: choice, values: [2097152, 8388608]}
  downlink: {kind: const, value: 33554432}
  publisher_uplink: 4194304
release: {app: hello, image_bytes: 4194304, layers: 2}
crowd: {fraction: 1, window: 2s}
malicious:
  - {behaviour: corrupt, count: 1}
  - {behaviour: slow, count: 1}
horizon: 3m
`

// TestFlashCrowdWithBadPeers: every honest node completes through its own
// install path, the publisher uploads a bounded number of copies
// (super-seeding: the crowd serves itself), and no node keeps a wrong
// byte though a corrupting peer serves the image too.
func TestFlashCrowdWithBadPeers(t *testing.T) {
	sc, err := scenario.Parse([]byte(crowdScenario))
	if err != nil {
		t.Fatal(err)
	}
	var log *slog.Logger
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	var st Stats
	res, err := RunWith(t.Context(), sc, 1, Options{Log: log, Stats: &st})
	if err != nil {
		t.Fatal(err)
	}
	f := res.Figures()
	t.Logf("wall %s, peak %d MiB, figures %+v, refused %v, banned %d", res.WallTime.Round(time.Millisecond), res.PeakBytes>>20, f, res.Refused, res.Banned)
	// The twin runtime's containers run as they were started: a node that
	// recreates one (its reconciler took the twin's PIDs for this host's
	// and found them dead) loops on it and starves the others' exchange.
	if st.Recreated != 0 {
		t.Errorf("the nodes recreated %d containers: want none", st.Recreated)
	}
	if len(res.Completion) != 15 || len(res.Discovery) != 15 || len(res.Uploaded) != 16 {
		t.Fatalf("%d completions, %d discoveries, %d uploads: want 15, 15, 16", len(res.Completion), len(res.Discovery), len(res.Uploaded))
	}
	for i, c := range res.Completion {
		if c < 0 {
			t.Errorf("fetcher %d did not complete", i+1)
		}
		if d := res.Discovery[i]; d < 0 || d > c {
			t.Errorf("fetcher %d: discovered at %s, completed at %s", i+1, d, c)
		}
	}
	if res.CorruptAccepted != 0 {
		t.Errorf("%d nodes kept corrupt bytes", res.CorruptAccepted)
	}
	// The attacks happened: honest nodes got wrong pieces and dropped
	// them, and gave up on the trickling peer.
	if res.Refused[report.RefusedCorrupt] == 0 || res.Refused[report.RefusedSlowAbort] == 0 {
		t.Errorf("refusals %v: want bad blocks dropped and slow peers abandoned", res.Refused)
	}
	if f.OriginCopies < 0.9 || f.OriginCopies > 4 {
		t.Errorf("origin uploaded %.2f copies: want between 0.9 and 4 for 15 fetchers", f.OriginCopies)
	}
	if res.PeakBytes == 0 || res.ImageBytes < 4<<20 {
		t.Errorf("peak %d bytes, image %d bytes", res.PeakBytes, res.ImageBytes)
	}
}

func TestUnsupportedBehaviourIsNamed(t *testing.T) {
	sc, err := scenario.Parse([]byte(`
name: x
nodes: 4
release: {image_bytes: 1048576}
malicious: [{behaviour: dag-bomb, count: 1}]
`))
	if err != nil {
		t.Fatal(err)
	}
	_, err = Run(t.Context(), sc, 1)
	if !errors.Is(err, ErrUnsupported) || err.Error() != `emulate: malicious[0].behaviour "dag-bomb": not supported in emulation (corrupt and slow are)` {
		t.Fatalf("got %v", err)
	}
}

// TestPartitionDelaysTheFarSide: 40% of the swarm is cut off from the
// publisher's side at the announcement for 15 s. The far side reads the
// announcement (the relay is not cut) but no piece reaches it until the
// heal; after it, every node completes.
func TestPartitionDelaysTheFarSide(t *testing.T) {
	sc, err := scenario.Parse([]byte(`
name: ci-partition
nodes: 12
links:
  latency: {kind: const, value: 0.002}
  uplink: {kind: const, value: 8388608}
release: {image_bytes: 1048576}
crowd: {fraction: 1, window: 0s}
partitions: [{at: 0s, duration: 15s, fraction: 0.4}]
horizon: 3m
`))
	if err != nil {
		t.Fatal(err)
	}
	res, err := Run(t.Context(), sc, 3)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("completions %v", res.Completion)
	late := 0
	for i, c := range res.Completion {
		if c < 0 {
			t.Fatalf("fetcher %d did not complete", i+1)
		}
		if c >= 15*time.Second {
			late++
		}
	}
	// round(0.4 × 12) = 5 nodes on the far side.
	if late < 5 {
		t.Fatalf("%d fetchers completed after the heal, want the 5 cut off at least", late)
	}
	if res.CorruptAccepted != 0 {
		t.Fatalf("%d nodes kept corrupt bytes", res.CorruptAccepted)
	}
}

// TestChurnDuringRelease: half the fetchers go offline a second into the
// release for three seconds, again and again; every node still
// completes, with no wrong byte kept.
func TestChurnDuringRelease(t *testing.T) {
	sc, err := scenario.Parse([]byte(`
name: ci-churn
nodes: 12
links:
  latency: {kind: const, value: 0.002}
  uplink: {kind: const, value: 2097152}
release: {image_bytes: 4194304}
crowd: {fraction: 1, window: 0s}
churn:
  fraction: 0.5
  session: {kind: const, value: 1}
  downtime: {kind: const, value: 3}
horizon: 5m
`))
	if err != nil {
		t.Fatal(err)
	}
	var st Stats
	res, err := RunWith(t.Context(), sc, 5, Options{Stats: &st})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("completions %v, %d churn events", res.Completion, st.Churned)
	if st.Churned < 2 {
		t.Fatalf("%d churn events played: want nodes to have left and come back", st.Churned)
	}
	for i, c := range res.Completion {
		if c < 0 {
			t.Fatalf("fetcher %d did not complete", i+1)
		}
	}
	if res.CorruptAccepted != 0 {
		t.Fatalf("%d nodes kept corrupt bytes", res.CorruptAccepted)
	}
}

// TestUpdateFetchesTheChangedLayer: after a release of 4 layers, an
// update replacing one; every node updates, and the publisher uploads
// about one copy of the release and one of the changed layer, not two
// copies: the unchanged layers come from the nodes' own stores.
func TestUpdateFetchesTheChangedLayer(t *testing.T) {
	sc, err := scenario.Parse([]byte(`
name: ci-update
nodes: 8
links:
  latency: {kind: const, value: 0.002}
  uplink: {kind: const, value: 8388608}
release: {image_bytes: 4194304, layers: 4}
update: {at: 2s, changed_layers: 1}
crowd: {fraction: 1, window: 0s}
horizon: 3m
`))
	if err != nil {
		t.Fatal(err)
	}
	res, err := RunWith(t.Context(), sc, 7, Options{})
	if err != nil {
		t.Fatal(err)
	}
	f := res.Figures()
	t.Logf("completions %v, update completions %v, origin copies %.2f", res.Completion, res.UpdateCompletion, f.OriginCopies)
	if len(res.UpdateCompletion) != 7 {
		t.Fatalf("%d update completions, want 7", len(res.UpdateCompletion))
	}
	for i, c := range res.UpdateCompletion {
		if c < 0 || res.Completion[i] < 0 {
			t.Fatalf("fetcher %d: release %s, update %s", i+1, res.Completion[i], c)
		}
	}
	if f.OriginCopies > 1.6 {
		t.Fatalf("origin uploaded %.2f copies of the release: want about 1.25 (the release and one layer of four)", f.OriginCopies)
	}
	if res.CorruptAccepted != 0 {
		t.Fatalf("%d nodes kept corrupt bytes", res.CorruptAccepted)
	}
}

// TestDiscoveryRounds: the probe announcements timed before the release
// reach every fetching node, each round on its own clock, and leave the
// release's discovery and the crowd as they were.
func TestDiscoveryRounds(t *testing.T) {
	sc, err := scenario.Parse([]byte(`
name: rounds
nodes: 8
links:
  latency: {kind: uniform, min: 0.001, max: 0.004}
  uplink: {kind: const, value: 8388608}
  downlink: {kind: const, value: 33554432}
release: {app: hello, image_bytes: 1048576, layers: 1}
crowd: {fraction: 1, window: 1s}
horizon: 2m
`))
	if err != nil {
		t.Fatal(err)
	}
	res, err := RunWith(t.Context(), sc, 1, Options{DiscoveryRounds: 3})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.DiscoveryRounds) != 3 {
		t.Fatalf("%d rounds, want 3", len(res.DiscoveryRounds))
	}
	for k, round := range res.DiscoveryRounds {
		if len(round) != 7 {
			t.Fatalf("round %d: %d nodes, want the 7 fetching ones", k+1, len(round))
		}
		for i, d := range round {
			// Tens of ms here (hundreds under -race beside other
			// packages); seconds would be a round timed from the wrong
			// moment, or a node that missed it.
			if d <= 0 || d > 5*time.Second {
				t.Errorf("round %d, node %d: discovered after %s", k+1, i+1, d)
			}
		}
	}
	for i, c := range res.Completion {
		if c < 0 || res.Discovery[i] < 0 {
			t.Errorf("node %d: discovered at %s, completed at %s", i+1, res.Discovery[i], c)
		}
	}
	t.Logf("rounds %v, release %v", res.DiscoveryRounds, res.Discovery)
}
