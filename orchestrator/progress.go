package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"time"
)

// Stage is a step of an operation.
type Stage string

// Stages, in the order an install goes through them.
const (
	StageFetch    Stage = "fetch"   // ports checked, archives verified against their CIDs
	StageLoad     Stage = "load"    // images loaded and their digests checked
	StageSecrets  Stage = "secrets" // generated secrets materialised
	StageCreate   Stage = "create"
	StageStart    Stage = "start"
	StageHealth   Stage = "health"
	StageStop     Stage = "stop"
	StageRemove   Stage = "remove"
	StageRollback Stage = "rollback"
	StageDone     Stage = "done"
)

// Reason classifies why an operation failed, for people and programs.
type Reason string

// Failure reasons.
const (
	ReasonPortTaken     Reason = "port-taken"
	ReasonDiskFull      Reason = "disk-full"
	ReasonHealthTimeout Reason = "health-timeout"
	ReasonExited        Reason = "container-exited"
	ReasonEngineTimeout Reason = "engine-timeout"
	ReasonImageMismatch Reason = "image-mismatch"
	ReasonNameTaken     Reason = "name-taken"
	ReasonWaiting       Reason = "waiting-for-requirement"
	ReasonBusy          Reason = "busy"
	ReasonCancelled     Reason = "cancelled"
	ReasonFailed        Reason = "failed"
)

// Errors operations return, for callers to branch on.
var (
	// ErrBusy is returned when another operation on the app is under way.
	ErrBusy = errors.New("another operation on this app is under way")
	// ErrNotInstalled is returned for an app the node does not have.
	ErrNotInstalled = errors.New("app not installed")
	// ErrAlreadyInstalled is returned by Install for an installed app at
	// another version (use Update).
	ErrAlreadyInstalled = errors.New("app already installed")
	// ErrUnhealthy is returned when a container did not become healthy
	// within its health deadline.
	ErrUnhealthy = errors.New("health check did not pass in time")
	// ErrExited is returned when a container exited while it was awaited.
	ErrExited = errors.New("container exited")
	// ErrImageMismatch is returned when an archive or a loaded image does
	// not match the manifest's pinned CID or digest.
	ErrImageMismatch = errors.New("image does not match the manifest")
	// ErrNameTaken is returned when a container name archy needs is held
	// by a container archy did not create; archy never touches it.
	ErrNameTaken = errors.New("container name taken by a container archy did not create")
	// ErrWaiting is returned when a required app is not healthy.
	ErrWaiting = errors.New("waiting for a required app")
	// ErrRolledBack is returned by Update when the new version failed and
	// the previous one was restored.
	ErrRolledBack = errors.New("update failed and was rolled back")
)

// classify maps an error to a Reason.
func classify(err error) Reason {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, ErrPortTaken):
		return ReasonPortTaken
	case errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT):
		return ReasonDiskFull
	case errors.Is(err, ErrUnhealthy):
		return ReasonHealthTimeout
	case errors.Is(err, ErrExited):
		return ReasonExited
	case errors.Is(err, ErrImageMismatch):
		return ReasonImageMismatch
	case errors.Is(err, ErrNameTaken):
		return ReasonNameTaken
	case errors.Is(err, ErrWaiting):
		return ReasonWaiting
	case errors.Is(err, ErrBusy):
		return ReasonBusy
	case errors.Is(err, ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		return ReasonEngineTimeout
	case errors.Is(err, context.Canceled):
		return ReasonCancelled
	}
	return ReasonFailed
}

// Progress is one report of an operation: its stage and overall fraction
// (monotonic, 0 to 1), and at the end Done with Err and Reason empty on
// success.
type Progress struct {
	OpID     uint64    `json:"op_id"`
	Op       string    `json:"op"`
	App      string    `json:"app"`
	Stage    Stage     `json:"stage"`
	Fraction float64   `json:"fraction"`
	Message  string    `json:"message,omitempty"`
	Done     bool      `json:"done,omitempty"`
	Err      string    `json:"error,omitempty"`
	Reason   Reason    `json:"reason,omitempty"`
	Time     time.Time `json:"time"`
}

// operation tracks one operation's progress.
type operation struct {
	o      *Orchestrator
	a      *app
	last   Progress
	failed Stage // the stage that failed, when clean-up stages follow it
}

func (o *Orchestrator) newOp(a *app, kind string) *operation {
	op := &operation{o: o, a: a, last: Progress{OpID: o.opSeq.Add(1), Op: kind, App: a.id}}
	op.report(StageFetch, 0, "started")
	return op
}

// report publishes a fraction; it never goes backwards.
func (op *operation) report(stage Stage, frac float64, msg string) {
	frac = min(max(frac, op.last.Fraction), 1)
	p := op.last
	p.Stage, p.Fraction, p.Message, p.Time = stage, frac, msg, op.o.cfg.Now()
	op.last = p
	op.o.publish(op.a, p)
}

// stage returns ctx bounded by the stage's own deadline.
func (op *operation) stage(ctx context.Context, stage Stage, frac float64, d time.Duration, msg string) (context.Context, context.CancelFunc) {
	op.report(stage, frac, msg)
	return context.WithTimeout(ctx, d)
}

// cleaningUp records that the current stage failed, before the stages
// that undo it report: the error then names the stage that failed, not
// the clean-up that ran after it.
func (op *operation) cleaningUp() {
	if op.failed == "" {
		op.failed = op.last.Stage
	}
}

// finish ends the operation and returns err (wrapped with the stage that
// failed).
func (op *operation) finish(err error) error {
	p := op.last
	p.Done, p.Time = true, op.o.cfg.Now()
	if err == nil {
		p.Stage, p.Fraction, p.Message = StageDone, 1, "done"
	} else {
		stage := p.Stage
		if op.failed != "" {
			stage = op.failed
		}
		err = fmt.Errorf("%s %s: %s: %w", p.Op, p.App, stage, err)
		p.Err, p.Reason = err.Error(), classify(err)
	}
	op.last = p
	op.o.publish(op.a, p)
	return err
}
