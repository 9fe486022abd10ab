package config

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"
)

const envPrefix = "XROUTE_"

// applyEnv overrides every scalar field from XROUTE_<YAML_PATH>. Lists
// (providers, models) are file-only: their shape does not fit one variable.
func applyEnv(cfg *Config, environ []string) error {
	env := make(map[string]string, len(environ))
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, envPrefix) {
			env[k] = v
		}
	}
	if len(env) == 0 {
		return nil
	}
	return walkEnv(reflect.ValueOf(cfg).Elem(), envPrefix, "", env)
}

var durationType = reflect.TypeOf(time.Duration(0))

func walkEnv(v reflect.Value, prefix, path string, env map[string]string) error {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		key := strings.Split(f.Tag.Get("yaml"), ",")[0]
		if key == "" || key == "-" {
			continue
		}
		name := prefix + strings.ToUpper(key)
		fpath := key
		if path != "" {
			fpath = path + "." + key
		}
		fv := v.Field(i)
		if fv.Kind() == reflect.Struct {
			if err := walkEnv(fv, name+"_", fpath, env); err != nil {
				return err
			}
			continue
		}
		raw, ok := env[name]
		if !ok {
			continue
		}
		if err := setScalar(fv, raw); err != nil {
			return fmt.Errorf("%s (%s): %w", name, fpath, err)
		}
	}
	return nil
}

func setScalar(fv reflect.Value, raw string) error {
	if fv.Type() == durationType {
		d, err := ParseDuration(raw)
		if err != nil {
			return fmt.Errorf("not a duration (e.g. 30s, 5m, 30d): %q", raw)
		}
		fv.SetInt(int64(d))
		return nil
	}
	switch fv.Kind() {
	case reflect.String:
		fv.SetString(raw)
	case reflect.Int, reflect.Int64, reflect.Int32:
		n, err := strconv.ParseInt(raw, 10, 64)
		if err != nil {
			return fmt.Errorf("not an integer: %q", raw)
		}
		fv.SetInt(n)
	case reflect.Uint32, reflect.Uint64, reflect.Uint:
		n, err := strconv.ParseUint(raw, 10, 64)
		if err != nil {
			return fmt.Errorf("not a non-negative integer: %q", raw)
		}
		fv.SetUint(n)
	case reflect.Bool:
		b, err := strconv.ParseBool(raw)
		if err != nil {
			return fmt.Errorf("not a boolean: %q", raw)
		}
		fv.SetBool(b)
	case reflect.Float64:
		f, err := strconv.ParseFloat(raw, 64)
		if err != nil {
			return fmt.Errorf("not a number: %q", raw)
		}
		fv.SetFloat(f)
	default:
		// Lists and maps are configured in the file only.
	}
	return nil
}

// EnvNames lists every environment variable the config understands, with the
// YAML path it overrides; used by the README and `xroute config env`.
func EnvNames() [][2]string {
	var out [][2]string
	var walk func(t reflect.Type, prefix, path string)
	walk = func(t reflect.Type, prefix, path string) {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			key := strings.Split(f.Tag.Get("yaml"), ",")[0]
			if key == "" || key == "-" {
				continue
			}
			name := prefix + strings.ToUpper(key)
			fpath := key
			if path != "" {
				fpath = path + "." + key
			}
			switch {
			case f.Type.Kind() == reflect.Struct:
				walk(f.Type, name+"_", fpath)
			case f.Type.Kind() == reflect.Slice || f.Type.Kind() == reflect.Map:
			default:
				out = append(out, [2]string{name, fpath})
			}
		}
	}
	walk(reflect.TypeOf(Config{}), envPrefix, "")
	return out
}
