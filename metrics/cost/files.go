package cost

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// keySize is the size of a key LoadOrCreateKey creates; minKeySize the least it
// accepts.
const (
	keySize    = 32
	minKeySize = 16
)

// LoadOrCreateKey returns the per-install secret key for hashing device
// identities, read from path (its bytes, surrounding white space trimmed, at
// least 16). When the file does not exist it creates it with 32 random bytes,
// readable by the owner only. The same key must hash the same device after a
// restart, or a saved state would count it twice; the gateway's keyed hash of
// identities in its logs may use the same key.
func LoadOrCreateKey(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return createKey(path)
	}
	if err != nil {
		return nil, fmt.Errorf("cost: hashing key: %w", err)
	}
	key := bytes.TrimSpace(data)
	if len(key) < minKeySize {
		return nil, fmt.Errorf("cost: hashing key %s: %d bytes, need at least %d", path, len(key), minKeySize)
	}
	return key, nil
}

func createKey(path string) ([]byte, error) {
	key := make([]byte, keySize)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("cost: hashing key: %w", err)
	}
	// Random bytes may begin or end with what TrimSpace removes; draw again
	// until they do not, so that the key read back is the key written.
	for len(bytes.TrimSpace(key)) != len(key) {
		if _, err := rand.Read(key); err != nil {
			return nil, fmt.Errorf("cost: hashing key: %w", err)
		}
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return LoadOrCreateKey(path) // another process made it first
	}
	if err != nil {
		return nil, fmt.Errorf("cost: hashing key: %w", err)
	}
	if _, err := f.Write(key); err != nil {
		f.Close()
		return nil, fmt.Errorf("cost: hashing key: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, fmt.Errorf("cost: hashing key: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("cost: hashing key: %w", err)
	}
	return key, nil
}

// writeFileAtomic replaces path with data, so that a crash leaves either the
// old file or the new one: it writes a temporary file in the same directory,
// syncs it, renames it over path and syncs the directory.
func writeFileAtomic(path string, data []byte, perm fs.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // a no-op once renamed
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// SaveState writes d's sketches to path atomically (owner-only permissions).
func (d *Devices) SaveState(path string) error {
	data, err := d.EncodeState()
	if err != nil {
		return err
	}
	if err := writeFileAtomic(path, data, 0o600); err != nil {
		return fmt.Errorf("cost: save state: %w", err)
	}
	return nil
}

// LoadState reads the state file at path into d. A missing file is not an
// error (a first start); see DecodeState for the rest.
func (d *Devices) LoadState(path string) error {
	data, err := readLimited(path, maxStateBytes)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("cost: load state: %w", err)
	}
	return d.DecodeState(data)
}

func readLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(io.LimitReader(f, limit+1)); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
