package control

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"

	"github.com/tdsproxy/tdsproxy/faults"
)

// The admin API's JSON: answers, the one error shape, and strict decoding
// whose errors name the key the user wrote.

func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		writeError(w, http.StatusInternalServerError, CodeInternal, "encoding the answer: "+err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	b, _ := json.Marshal(ErrorBody{Error: ErrorDetail{Code: code, Message: msg}})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// fail answers err with the status its kind calls for.
func fail(w http.ResponseWriter, err error) {
	var ie *InvalidError
	switch {
	case errors.Is(err, ErrNoProxy), errors.Is(err, ErrNoConnection), errors.Is(err, faults.ErrNoRule):
		writeError(w, http.StatusNotFound, CodeNotFound, err.Error())
	case errors.Is(err, ErrProxyExists), errors.Is(err, faults.ErrRuleExists), errors.Is(err, ErrAddressInUse):
		writeError(w, http.StatusConflict, CodeConflict, err.Error())
	case errors.Is(err, ErrClosed):
		writeError(w, http.StatusServiceUnavailable, CodeUnavailable, err.Error())
	case errors.As(err, &ie):
		writeError(w, http.StatusBadRequest, CodeBadRequest, err.Error())
	default:
		writeError(w, http.StatusInternalServerError, CodeInternal, err.Error())
	}
}

// readBody reads a request body of at most maxBody bytes.
func readBody(r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		return nil, invalidf("body: %v", err)
	}
	if len(b) > maxBody {
		return nil, invalidf("body: larger than %d bytes", maxBody)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, invalidf("body: empty; expected a JSON object")
	}
	return b, nil
}

// decodeStrict decodes one JSON value into v; an unknown field is an error
// naming it.
func decodeStrict(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return invalid(jsonFieldError(err))
	}
	if dec.More() {
		return invalidf("body: more than one JSON value")
	}
	return nil
}

// jsonFieldError rewrites encoding/json's errors to name the field as the
// user wrote it.
func jsonFieldError(err error) error {
	var ute *json.UnmarshalTypeError
	if errors.As(err, &ute) && ute.Field != "" {
		// encoding/json puts the Go struct's name before an embedded
		// struct's fields ("ProxyRequest.name"); users write only keys,
		// which are lower case.
		key := ute.Field
		for {
			first, rest, ok := strings.Cut(key, ".")
			if !ok || first == "" || first[0] < 'A' || first[0] > 'Z' {
				break
			}
			key = rest
		}
		value := ute.Value
		switch value {
		case "bool":
			value = "true/false"
		case "array":
			value = "a list"
		case "object":
			value = "an object"
		case "number", "string":
			value = "a " + value
		}
		return fmt.Errorf("%s: must be %s, not %s", key, jsonKind(ute.Type), value)
	}
	msg := err.Error()
	if f, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
		return fmt.Errorf("%s: unknown key", strings.Trim(f, `"`))
	}
	return fmt.Errorf("body: %v", jsonSyntax(err))
}

// jsonKind says what a JSON value of Go type t looks like, in JSON's words.
func jsonKind(t reflect.Type) string {
	if t == nil {
		return "a value"
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "a list"
	case reflect.Map, reflect.Struct:
		return "an object"
	case reflect.Pointer:
		return jsonKind(t.Elem())
	}
	return "another kind of value"
}

// jsonSyntax words a syntax error with its offset.
func jsonSyntax(err error) error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Errorf("invalid JSON at byte %d: %s", se.Offset, strings.TrimPrefix(se.Error(), "json: "))
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return errors.New("invalid JSON: unexpected end")
	}
	return errors.New(strings.TrimPrefix(err.Error(), "json: "))
}
