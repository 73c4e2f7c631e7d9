//go:build unix

package contentcache

import (
	"errors"
	"os"
	"syscall"
)

// lockDir takes an exclusive lock on path (created if missing), so that two
// gateway processes never share one cache directory: each counts only its own
// files against the bound.
func lockDir(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o640)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, errors.New("the directory is in use by another process (give each gateway instance its own)")
		}
		return nil, err
	}
	return f, nil
}
