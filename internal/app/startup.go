package app

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/xroute/xroute/config"
	"github.com/xroute/xroute/keys/vault"
)

// StartupError is a start-up failure told in one line: what went wrong
// and what to do about it. serve prints it as it is.
type StartupError struct {
	What, Fix string
	Err       error // the cause, for errors.Is/As
}

func (e *StartupError) Error() string { return e.What + ": " + e.Fix }
func (e *StartupError) Unwrap() error { return e.Err }

// InDataDir places the config's relative file paths (database, pepper,
// master key, webhook secret, usage spool) in dir: `serve --data DIR`,
// and the demo's per-user directory. Absolute paths stay where they are.
func InDataDir(cfg config.Config, dir string) config.Config {
	for _, p := range []*string{&cfg.Database.Path, &cfg.Auth.PepperFile, &cfg.Vault.MasterKeyFile, &cfg.Anomaly.WebhookSecretFile, &cfg.Usage.SpoolDir} {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
	return cfg
}

// WrittenPaths are the files and directories Build creates or writes
// with cfg: the SQLite database, the secrets it generates on a first
// start, the usage spool.
func WrittenPaths(cfg config.Config) []string {
	var out []string
	if !cfg.Database.Postgres() {
		out = append(out, cfg.Database.Path)
	}
	if cfg.Auth.Pepper == "" && cfg.Auth.PepperFile != "" {
		out = append(out, cfg.Auth.PepperFile)
	}
	if cfg.Vault.MasterKey == "" && cfg.Vault.MasterKeyFile != "" {
		out = append(out, cfg.Vault.MasterKeyFile)
	}
	if cfg.Anomaly.Webhook != "" && cfg.Anomaly.WebhookSecret == "" && cfg.Anomaly.WebhookSecretFile != "" {
		out = append(out, cfg.Anomaly.WebhookSecretFile)
	}
	return append(out, SpoolDir(cfg))
}

// Preflight checks, writing nothing, what Build would otherwise find out
// half-way after creating files: a master key that cannot be a key, and
// a place for the files that cannot take them (a read-only file system,
// a path under a regular file). serve runs it, then binds its listeners,
// and only then lets Build write: a start that cannot serve leaves the
// disk as it found it.
func Preflight(cfg config.Config) error {
	for _, p := range WrittenPaths(cfg) {
		if err := writable(p); err != nil {
			return err
		}
	}
	if cfg.Vault.MasterKey != "" {
		if _, err := vault.ParseMasterKey(cfg.Vault.MasterKey); err != nil {
			return &StartupError{What: "XROUTE_VAULT_MASTER_KEY is not a master key (" + err.Error() + ")",
				Fix: "give the 32-byte key this database's vault was created with, in base64 or hex, or unset it to use vault.master_key_file", Err: err}
		}
	} else if data, err := os.ReadFile(cfg.Vault.MasterKeyFile); err == nil {
		if _, err := vault.ParseMasterKey(string(data)); err != nil {
			return &StartupError{What: "the master key file " + cfg.Vault.MasterKeyFile + " does not hold a master key (" + err.Error() + ")",
				Fix: "restore the file from your backup (32 bytes, base64 or hex), or point vault.master_key_file at it", Err: err}
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return &StartupError{What: "cannot read the master key file " + cfg.Vault.MasterKeyFile + " (" + errText(err) + ")",
			Fix: "check its permissions, or set XROUTE_VAULT_MASTER_KEY", Err: err}
	}
	return nil
}

// writable reports, without writing, whether path can be written: its
// own permission when it exists, else its nearest existing ancestor's,
// which must be a directory.
func writable(path string) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	fail := func(what string, err error) error {
		return &StartupError{What: "cannot write " + path + " (" + what + ")",
			Fix: "choose a writable data directory (--data DIR) or fix the path in the config", Err: err}
	}
	for p := abs; ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		switch {
		case err == nil && p != abs && !fi.IsDir():
			return fail(p+" is a file, not a directory", syscall.ENOTDIR)
		case err == nil:
			if err := accessW(p); err != nil {
				return fail(errText(err), err)
			}
			return nil
		case errors.Is(err, fs.ErrNotExist) && p != filepath.Dir(p):
			continue
		case errors.Is(err, syscall.ENOTDIR):
			continue // an ancestor is a file: found above
		default:
			return fail(errText(err), err)
		}
	}
}

// Explain turns an error of Build into a StartupError saying what to do
// when it is one an operator can fix (a wrong master key, a directory it
// cannot write); others pass unchanged.
func Explain(err error) error {
	var se *StartupError
	var pe *fs.PathError
	switch {
	case err == nil || errors.As(err, &se):
		return err
	case errors.Is(err, vault.ErrWrongMasterKey):
		return &StartupError{What: "the master key does not open this database's vault",
			Fix: "set XROUTE_VAULT_MASTER_KEY (or vault.master_key_file) to the key the database was created with, or use another database.path", Err: err}
	case errors.As(err, &pe) && (errors.Is(err, fs.ErrPermission) || errors.Is(err, syscall.EROFS) || errors.Is(err, syscall.ENOTDIR)):
		return &StartupError{What: "cannot write " + pe.Path + " (" + errText(pe.Err) + ")",
			Fix: "choose a writable data directory (--data DIR) or fix the path in the config", Err: err}
	}
	return err
}

func errText(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}
