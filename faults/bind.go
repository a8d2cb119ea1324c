package faults

import (
	"encoding"
	"fmt"
	"math"
	"reflect"
)

// Options bind by name (the package doc, doc.go): a stage's or a
// scenario's options are stored into the fields of its config struct whose
// `opt:"NAME"` tag is the option's name, never by position in a list, so
// reordering a table cannot mis-assign a value. TestOptionFieldsBound checks
// that every option of every table has its field.

// optField returns the settable field of the struct dst points to whose
// opt tag is name.
func optField(dst any, name string) (reflect.Value, error) {
	v := reflect.ValueOf(dst)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		return reflect.Value{}, fmt.Errorf("faults: options bind into a struct pointer, not %T", dst)
	}
	v = v.Elem()
	t := v.Type()
	for i := range t.NumField() {
		if t.Field(i).Tag.Get("opt") == name {
			return v.Field(i), nil
		}
	}
	return reflect.Value{}, fmt.Errorf("faults: %T has no field for option %q", dst, name)
}

// bindInt stores n into the option's integer field (a count, a size, a
// rate or a time.Duration). An int field takes at most MaxInt32: the
// configs' validate methods refuse what that clamping changes, so it only
// prevents wrap-around.
func bindInt(dst any, name string, n int64) error {
	f, err := optField(dst, name)
	if err != nil {
		return err
	}
	switch f.Kind() {
	case reflect.Int:
		f.SetInt(min(n, math.MaxInt32))
	case reflect.Int64:
		f.SetInt(n)
	default:
		return fmt.Errorf("faults: option %q: field of kind %s cannot hold a number", name, f.Kind())
	}
	return nil
}

// bindText parses raw into the option's field: a field whose pointer is an
// encoding.TextUnmarshaler parses itself (and words its own errors); the
// caller handles the plain kinds.
func bindText(dst any, name, raw string) (handled bool, err error) {
	f, err := optField(dst, name)
	if err != nil {
		return true, err
	}
	if u, ok := f.Addr().Interface().(encoding.TextUnmarshaler); ok {
		return true, u.UnmarshalText([]byte(raw))
	}
	return false, nil
}
