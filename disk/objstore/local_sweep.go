package objstore

import (
	"context"
	"errors"
	"io/fs"
)

// MaxSweepRemove bounds the temp files one SweepTemp call removes, so a
// start-up after many crashed Puts does a bounded amount of work per call.
const MaxSweepRemove = 1024

// SweepTemp removes the temp files this instance (its LocalOptions.
// InstanceID) left behind when it crashed in the middle of a Put, at most
// MaxSweepRemove of them, and reports how many it removed; a caller that
// gets MaxSweepRemove back calls again. Call it once after NewLocal and
// before the first Put: a temp file named for this instance cannot belong
// to an in-flight Put then, while another instance's temp files (another
// InstanceID) may, so they are never touched. Removals are not synced: one
// a crash undoes is simply redone by the next sweep.
func (l *Local) SweepTemp(ctx context.Context) (int, error) {
	if err := ctxErr(ctx); err != nil {
		return 0, err
	}
	removed := 0
	err := l.sweepDir(ctx, l.root, &removed)
	return removed, err
}

func (l *Local) sweepDir(ctx context.Context, dir string, removed *int) error {
	ents, err := l.fs.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil // removed by a concurrent Delete
	}
	if err != nil {
		return diskErr("sweep", dir, err)
	}
	for _, e := range ents {
		if *removed >= MaxSweepRemove {
			break
		}
		name := e.Name()
		switch {
		case e.IsDir() && len(name) > 0 && name[0] == tagDir:
			if err := ctxErr(ctx); err != nil {
				return err
			}
			if err := l.sweepDir(ctx, joinPath(dir, name), removed); err != nil {
				return err
			}
		case !e.IsDir() && l.isOwnTemp(name):
			if err := l.fs.Remove(joinPath(dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return diskErr("sweep", joinPath(dir, name), err)
			}
			*removed++
		}
	}
	return nil
}

// isOwnTemp reports whether name is one of this instance's temp files:
// tmpBase followed by digits only (escSegment keeps '-', so a bare prefix
// test would also match instance "a-1"'s files for instance "a").
func (l *Local) isOwnTemp(name string) bool {
	if len(name) <= len(l.tmpBase) || name[:len(l.tmpBase)] != l.tmpBase {
		return false
	}
	for _, c := range name[len(l.tmpBase):] {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
