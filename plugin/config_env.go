package plugin

import (
	"encoding"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"paliprompt/core"
)

// envPrefix starts every environment override: PALIPROMPT_ + the key path
// in upper case with "_" between parts, e.g. nats.url -> PALIPROMPT_NATS_URL,
// model.dir -> PALIPROMPT_MODEL_DIR, nats.embedded.port ->
// PALIPROMPT_NATS_EMBEDDED_PORT.
const envPrefix = "PALIPROMPT_"

// EnvName is the environment variable that overrides a config key.
func EnvName(key string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// applyEnv sets every key whose environment variable is present.
func applyEnv(cfg *Config, lookup func(string) (string, bool)) error {
	return walkKeys(reflect.ValueOf(cfg).Elem(), "", func(key string, v reflect.Value) error {
		name := EnvName(key)
		s, ok := lookup(name)
		if !ok {
			return nil
		}
		if err := setFromString(v, s); err != nil {
			return core.Errorf(core.ErrConfig, "%s (overrides %s): %v", name, key, err)
		}
		return nil
	})
}

// ConfigKeys lists every key of config.toml as a dotted path.
func ConfigKeys() []string {
	var keys []string
	cfg := DefaultConfig()
	_ = walkKeys(reflect.ValueOf(&cfg).Elem(), "", func(key string, _ reflect.Value) error {
		keys = append(keys, key)
		return nil
	})
	return keys
}

var textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()

// walkKeys calls fn for every leaf value of a config struct with its
// dotted TOML key. Structs that unmarshal themselves from text are leaves.
func walkKeys(v reflect.Value, prefix string, fn func(key string, v reflect.Value) error) error {
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		tag := strings.Split(f.Tag.Get("toml"), ",")[0]
		if tag == "" || tag == "-" || !f.IsExported() {
			continue
		}
		key := tag
		if prefix != "" {
			key = prefix + "." + tag
		}
		fv := v.Field(i)
		if fv.Kind() == reflect.Map {
			if err := walkMap(fv, key, fn); err != nil {
				return err
			}
			continue
		}
		if fv.Kind() == reflect.Struct && !reflect.PointerTo(fv.Type()).Implements(textUnmarshaler) {
			if err := walkKeys(fv, key, fn); err != nil {
				return err
			}
			continue
		}
		if err := fn(key, fv); err != nil {
			return err
		}
	}
	return nil
}

// walkMap calls fn for every entry of a map table (model.max_new_tokens)
// with a settable copy of its value, and stores the copy back.
func walkMap(m reflect.Value, prefix string, fn func(key string, v reflect.Value) error) error {
	keys := m.MapKeys()
	sort.Slice(keys, func(a, b int) bool { return keys[a].String() < keys[b].String() })
	for _, k := range keys {
		v := reflect.New(m.Type().Elem()).Elem()
		v.Set(m.MapIndex(k))
		if err := fn(prefix+"."+k.String(), v); err != nil {
			return err
		}
		m.SetMapIndex(k, v)
	}
	return nil
}

// setFromString parses s into a config leaf value.
func setFromString(v reflect.Value, s string) error {
	if v.CanAddr() && v.Addr().Type().Implements(textUnmarshaler) {
		return v.Addr().Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(s))
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(s)
	case reflect.Bool:
		b, err := strconv.ParseBool(strings.TrimSpace(s))
		if err != nil {
			return fmt.Errorf("%q is not a boolean: use true or false", s)
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int64, reflect.Int32:
		n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
		if err != nil {
			return fmt.Errorf("%q is not a whole number", s)
		}
		v.SetInt(n)
	case reflect.Float64, reflect.Float32:
		f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil {
			return fmt.Errorf("%q is not a number", s)
		}
		v.SetFloat(f)
	case reflect.Slice:
		if v.Type().Elem().Kind() != reflect.String {
			return fmt.Errorf("unsupported list type %s", v.Type())
		}
		var items []string
		for _, item := range strings.Split(s, ",") {
			if item = strings.TrimSpace(item); item != "" {
				items = append(items, item)
			}
		}
		v.Set(reflect.ValueOf(items))
	default:
		return fmt.Errorf("unsupported type %s", v.Type())
	}
	return nil
}
