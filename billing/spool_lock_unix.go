//go:build linux || darwin || dragonfly || freebsd || netbsd || openbsd

package billing

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// lockDir takes an exclusive lock on dir's LOCK file, without waiting: a
// spool belongs to one process. The kernel releases it when the process
// dies, however it dies, so a restart after a kill -9 is never refused.
func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, lockFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	switch {
	case err == nil:
		return f, nil
	case errors.Is(err, syscall.EWOULDBLOCK):
		f.Close()
		return nil, fmt.Errorf("usage spool %s is in use by another xroute process; give each replica its own usage.spool_dir", dir)
	default:
		f.Close()
		return nil, fmt.Errorf("spool: lock %s: %w", dir, err)
	}
}
