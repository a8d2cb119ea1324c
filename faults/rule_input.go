package faults

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// How rules are read from JSON, YAML and the command line: unknown keys
// refused, every error naming the key in the user's words.

// UnmarshalJSON reads a match's window, naming the key at fault
// (match.window.every) and refusing unknown keys.
func (w *Window) UnmarshalJSON(b []byte) error {
	var raw struct {
		Every *string `json:"every"`
		For   *string `json:"for"`
	}
	if err := strictDecode(b, &raw); err != nil {
		return prefixKey("match.window", err)
	}
	for _, f := range []struct {
		key string
		s   *string
		d   *Duration
	}{{"every", raw.Every, &w.Every}, {"for", raw.For, &w.For}} {
		if f.s == nil {
			continue
		}
		if err := f.d.UnmarshalText([]byte(*f.s)); err != nil {
			return &keyError{key: "match.window." + f.key, err: err}
		}
	}
	return nil
}

// UnmarshalJSON reads a rule's match, refusing unknown keys and naming
// every key at fault by its path (match.first, match.window.every), so a
// merge patch's nested mistake reads as the key the user wrote.
func (m *Match) UnmarshalJSON(b []byte) error {
	type plain Match // no UnmarshalJSON: no recursion
	var p plain
	if err := strictDecode(b, &p); err != nil {
		var ke *keyError
		if errors.As(err, &ke) && strings.HasPrefix(ke.key, "match.") {
			return err // already a full path (match.window.*)
		}
		return prefixKey("match", err)
	}
	*m = Match(p)
	return nil
}

// OptionValues are a rule's options by name. In JSON (and so in YAML,
// which reaches the parser as JSON) a value may be a string, a number or
// true/false: {"reject": true}, {"server_tls": 1.2} and {"server_tls":
// "1.2"} are the same rule. Anything else is an error naming the key.
type OptionValues map[string]string

// UnmarshalJSON reads the options object; see OptionValues.
func (o *OptionValues) UnmarshalJSON(b []byte) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var raw map[string]any
	if err := dec.Decode(&raw); err != nil {
		return &keyError{key: "options", err: errors.New("must be an object of option: value, e.g. {\"server_tls\": \"1.2\"}")}
	}
	if raw == nil {
		*o = nil
		return nil
	}
	out := make(OptionValues, len(raw))
	for k, v := range raw {
		s, err := optionString(v)
		if err != nil {
			return &keyError{key: "options." + k, err: err}
		}
		out[k] = s
	}
	*o = out
	return nil
}

// optionString is an option value as the scenario parsers read it.
func optionString(v any) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case bool:
		return strconv.FormatBool(x), nil
	case json.Number:
		return x.String(), nil
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return "", fmt.Errorf("%v is not a number", x)
		}
		return strconv.FormatFloat(x, 'g', -1, 64), nil
	case float32:
		return optionString(float64(x))
	case int:
		return strconv.Itoa(x), nil
	case int64:
		return strconv.FormatInt(x, 10), nil
	case uint64:
		return strconv.FormatUint(x, 10), nil
	case nil:
		return "", errors.New("has no value (write a string, a number or true/false)")
	}
	return "", errors.New("must be a string, a number or true/false, not a list or an object")
}

// keyError is a problem with one key of a rule; Error reads "key: what".
type keyError struct {
	key string
	err error
}

func (e *keyError) Error() string { return e.key + ": " + e.err.Error() }
func (e *keyError) Unwrap() error { return e.err }

// prefixKey puts parent in front of the key an error names ("first:
// ..." under match becomes "match.first: ...").
func prefixKey(parent string, err error) error {
	var ke *keyError
	if errors.As(err, &ke) {
		return &keyError{key: parent + "." + ke.key, err: ke.err}
	}
	return &keyError{key: parent, err: err}
}

// strictDecode decodes exactly one JSON value into v, refusing unknown
// keys; errors name the key (keyError) in the user's words.
func strictDecode(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	switch _, err := dec.Token(); {
	case err == nil:
		return errors.New("more than one JSON value: send one object")
	case err != io.EOF:
		return fmt.Errorf("invalid JSON after the object: %s", strings.TrimPrefix(err.Error(), "json: "))
	}
	return nil
}

// Duration is a time.Duration written as "250ms", "5m" in JSON and YAML.
type Duration time.Duration

// MarshalText writes d as Go's duration syntax.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText reads Go's duration syntax.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("%q is not a duration like 250ms or 5m", b)
	}
	*d = Duration(v)
	return nil
}

// ParseRuleSpec decodes one rule from JSON (the admin API, or a config
// entry re-encoded as JSON). Unknown keys, values of the wrong kind and a
// second JSON value after the rule are errors that name the key.
func ParseRuleSpec(b []byte) (RuleSpec, error) {
	var r RuleSpec
	err := strictDecode(b, &r)
	return r, err
}

// RuleSpecFromMap decodes a rule from the generic map a YAML or viper
// loader produces.
func RuleSpecFromMap(m map[string]any) (RuleSpec, error) {
	n, err := normalise("", m)
	if err != nil {
		return RuleSpec{}, err
	}
	b, err := json.Marshal(n)
	if err != nil {
		return RuleSpec{}, err
	}
	return ParseRuleSpec(b)
}

// normalise turns YAML's map[any]any into map[string]any, and refuses what
// JSON cannot carry (YAML's .nan and .inf), naming the key at path.
func normalise(path string, v any) (any, error) {
	join := func(k string) string {
		if path == "" {
			return k
		}
		return path + "." + k
	}
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			n, err := normalise(join(k), e)
			if err != nil {
				return nil, err
			}
			out[k] = n
		}
		return out, nil
	case map[any]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[fmt.Sprint(k)] = e
		}
		return normalise(path, m)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			n, err := normalise(fmt.Sprintf("%s[%d]", path, i), e)
			if err != nil {
				return nil, err
			}
			out[i] = n
		}
		return out, nil
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil, &keyError{key: path, err: fmt.Errorf("%v is not a number", x)}
		}
	case float32:
		return normalise(path, float64(x))
	}
	return v, nil
}

// jsonError words encoding/json's errors in the user's terms: the key's
// path and what kind of value it takes, never a Go type.
func jsonError(err error) error {
	var ke *keyError
	if errors.As(err, &ke) {
		return ke
	}
	var ute *json.UnmarshalTypeError
	if errors.As(err, &ute) {
		key := ute.Field
		if key == "" {
			return fmt.Errorf("expected %s, got %s", kindWords(ute.Type), valueWords(ute.Value))
		}
		return &keyError{key: key, err: fmt.Errorf("must be %s, not %s", kindWords(ute.Type), valueWords(ute.Value))}
	}
	msg := err.Error()
	if f, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
		return &keyError{key: strings.Trim(f, `"`), err: errors.New("unknown key")}
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Errorf("invalid JSON at byte %d: %s", se.Offset, strings.TrimPrefix(se.Error(), "json: "))
	}
	return errors.New(strings.TrimPrefix(msg, "json: "))
}

// kindWords says what a JSON value of Go type t looks like.
func kindWords(t reflect.Type) string {
	if t == nil {
		return "a value"
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "a whole number"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number (0 or more)"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "a list"
	case reflect.Map, reflect.Struct:
		return "an object"
	case reflect.Pointer:
		return kindWords(t.Elem())
	}
	return "a value of another kind"
}

// valueWords names the JSON value encoding/json reported ("number 1.5").
func valueWords(v string) string {
	switch v {
	case "string":
		return "a string"
	case "bool":
		return "true/false"
	case "array":
		return "a list"
	case "object":
		return "an object"
	case "number":
		return "a number"
	}
	return v
}
