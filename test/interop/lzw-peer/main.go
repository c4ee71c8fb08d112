// lzw-peer: Go's compress/lzw (LSB order, literal width 8, as memberlist uses it) as a
// filter, the oracle for meshfed's LZW (test/interop/lzw.test.ts).
//
//	lzw-peer compress   < raw        > compressed
//	lzw-peer decompress < compressed > raw   (exit 1 and "ERR <text>" on stderr if invalid)
package main

import (
	"bytes"
	"compress/lzw"
	"fmt"
	"io"
	"os"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: lzw-peer compress|decompress")
		os.Exit(2)
	}
	in, err := io.ReadAll(os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "ERR", err)
		os.Exit(1)
	}
	var out bytes.Buffer
	switch os.Args[1] {
	case "compress":
		w := lzw.NewWriter(&out, lzw.LSB, 8)
		if _, err := w.Write(in); err != nil {
			fmt.Fprintln(os.Stderr, "ERR", err)
			os.Exit(1)
		}
		if err := w.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "ERR", err)
			os.Exit(1)
		}
	case "decompress":
		r := lzw.NewReader(bytes.NewReader(in), lzw.LSB, 8)
		if _, err := io.Copy(&out, r); err != nil {
			fmt.Fprintln(os.Stderr, "ERR", err)
			os.Exit(1)
		}
	default:
		fmt.Fprintln(os.Stderr, "unknown mode", os.Args[1])
		os.Exit(2)
	}
	if _, err := os.Stdout.Write(out.Bytes()); err != nil {
		os.Exit(1)
	}
}
