// yamux-peer: a Go reference peer for meshfed's yamux, built on Debian's hashicorp/yamux
// (GOPATH mode, see shared/spec/hashicorp-wire.md §3). Modes:
//
//	server [-backlog N] [-noaccept]   listen on 127.0.0.1:0, print "LISTEN <addr>", serve yamux
//	                                  sessions; each accepted stream starts with an op byte (below).
//	client -addr A [-streams N] [-size B]
//	                                  run the interop script against a meshfed server, print
//	                                  "OK <step> ..." lines, then "DONE" (or "FAIL <why>", exit 1).
//	bench-client -addr A -mode echo|sink -streams S -bytes B [-chunk C] [-warmup W]
//	                                  throughput run against any server speaking the ops below;
//	                                  prints "RESULT <bytes> <seconds>".
//
// Stream ops (first byte written by the opener; servers on both sides implement them):
//
//	'E' echo until EOF, then close            'S' u64 n, n bytes -> u64 n + sha256
//	's' u64 n, n bytes -> u64 n (bench sink)  'W' print "W-READY <id>", read until an error,
//	                                            print "STREAMERR <id> <err>"
//	'F' write "fin-first" and close at once   'G' go away, write "ok", close
//	'P' u64 n: open a stream back to the opener, send n bytes, expect them echoed, reply "push ok"
//	'X' ping the opener, reply "pong"
//
// The Go half-close pitfall (hashicorp-wire.md §10): after Close(), Read returns EOF as soon as
// the buffer is empty; so every exchange here reads everything it expects before closing.
package main

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/yamux"
)

var out sync.Mutex

func say(format string, args ...interface{}) {
	out.Lock()
	fmt.Printf(format+"\n", args...)
	out.Unlock()
}

func config(backlog int) *yamux.Config {
	c := yamux.DefaultConfig()
	c.LogOutput = os.Stderr
	if backlog > 0 {
		c.AcceptBacklog = backlog
	}
	return c
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: yamux-peer server|client|bench-client [flags]")
		os.Exit(2)
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	addr := fs.String("addr", "", "meshfed server address (client modes)")
	backlog := fs.Int("backlog", 0, "accept backlog (0 = yamux default 256)")
	noAccept := fs.Bool("noaccept", false, "server: never accept streams")
	streams := fs.Int("streams", 64, "concurrent streams")
	size := fs.Int("size", 1<<20, "bytes per stream (client)")
	mode := fs.String("mode", "echo", "bench: echo or sink")
	total := fs.Int64("bytes", 256<<20, "bench: total payload bytes")
	chunk := fs.Int("chunk", 64<<10, "bench: write size")
	warmup := fs.Int64("warmup", 0, "bench: untimed payload bytes first")
	quiet := fs.Bool("quiet", false, "discard yamux logs")
	_ = fs.Parse(os.Args[2:])
	var err error
	switch os.Args[1] {
	case "server":
		err = runServer(*backlog, *noAccept, *quiet)
	case "client":
		err = runClient(*addr, *streams, *size)
	case "bench-client":
		err = runBench(*addr, *mode, *streams, *total, *chunk, *warmup)
	default:
		err = fmt.Errorf("unknown mode %q", os.Args[1])
	}
	if err != nil {
		say("FAIL %v", err)
		os.Exit(1)
	}
}

// ---- server -----------------------------------------------------------------------------------

func runServer(backlog int, noAccept, quiet bool) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	say("LISTEN %s", ln.Addr())
	for {
		conn, err := ln.Accept()
		if err != nil {
			return err
		}
		cfg := config(backlog)
		if quiet {
			cfg.LogOutput = io.Discard
		}
		sess, err := yamux.Server(conn, cfg)
		if err != nil {
			return err
		}
		if noAccept {
			continue
		}
		go func() {
			for {
				st, err := sess.AcceptStream()
				if err != nil {
					return
				}
				go serveOp(sess, st)
			}
		}()
	}
}

func readU64(r io.Reader) (uint64, error) {
	var b [8]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return 0, err
	}
	return binary.BigEndian.Uint64(b[:]), nil
}

func writeU64(w io.Writer, n uint64) error {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], n)
	_, err := w.Write(b[:])
	return err
}

func serveOp(sess *yamux.Session, st *yamux.Stream) {
	defer st.Close()
	var op [1]byte
	if _, err := io.ReadFull(st, op[:]); err != nil {
		return
	}
	buf := make([]byte, 64<<10)
	switch op[0] {
	case 'E':
		_, _ = io.CopyBuffer(st, struct{ io.Reader }{st}, buf)
	case 'S', 's':
		n, err := readU64(st)
		if err != nil {
			return
		}
		h := sha256.New()
		var got int64
		if op[0] == 'S' {
			got, _ = io.CopyBuffer(h, io.LimitReader(st, int64(n)), buf)
		} else {
			got, _ = io.CopyBuffer(io.Discard, io.LimitReader(st, int64(n)), buf)
		}
		_ = writeU64(st, uint64(got))
		if op[0] == 'S' {
			_, _ = st.Write(h.Sum(nil))
		}
	case 'W':
		say("W-READY %d", st.StreamID())
		var err error
		for err == nil {
			_, err = st.Read(buf)
		}
		say("STREAMERR %d %v", st.StreamID(), err)
	case 'F':
		_, _ = st.Write([]byte("fin-first"))
		say("FIN-SENT %d", st.StreamID())
	case 'G':
		if err := sess.GoAway(); err != nil {
			return
		}
		_, _ = st.Write([]byte("ok"))
	case 'P':
		n, err := readU64(st)
		if err != nil {
			return
		}
		if err := pushTo(sess, int(n)); err != nil {
			_, _ = st.Write([]byte("push FAIL " + err.Error()))
			return
		}
		_, _ = st.Write([]byte("push ok"))
	case 'X':
		if _, err := sess.Ping(); err != nil {
			_, _ = st.Write([]byte("ping FAIL " + err.Error()))
			return
		}
		_, _ = st.Write([]byte("pong"))
	}
}

// pushTo opens a stream to the peer (which echoes it), sends n random bytes, checks the echo.
func pushTo(sess *yamux.Session, n int) error {
	st, err := sess.OpenStream()
	if err != nil {
		return err
	}
	data := make([]byte, n)
	_, _ = rand.Read(data)
	werr := make(chan error, 1)
	go func() {
		_, err := st.Write(data)
		werr <- err
	}()
	back := make([]byte, n)
	if _, err := io.ReadFull(st, back); err != nil {
		return fmt.Errorf("reading echo: %v", err)
	}
	if err := <-werr; err != nil {
		return fmt.Errorf("writing: %v", err)
	}
	if !bytes.Equal(back, data) {
		return errors.New("echo differs")
	}
	// Only now close: after Close() this yamux's reads return EOF at once.
	return st.Close()
}

// ---- client (interop script against a meshfed server) --------------------------------------------

func dial(addr string, backlog int) (*yamux.Session, error) {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	return yamux.Client(conn, config(backlog))
}

func runClient(addr string, streams, size int) error {
	sess, err := dial(addr, 0)
	if err != nil {
		return err
	}
	defer sess.Close()
	// Streams the meshfed server opens to us ('P'): echo them.
	go func() {
		for {
			st, err := sess.AcceptStream()
			if err != nil {
				return
			}
			go func() {
				_, _ = io.CopyBuffer(st, struct{ io.Reader }{st}, make([]byte, 64<<10))
				st.Close()
			}()
		}
	}()

	// 1. many concurrent streams: half echo, half sink with sha256.
	var wg sync.WaitGroup
	errs := make(chan error, streams)
	for i := 0; i < streams; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			var err error
			if i%2 == 0 {
				err = clientEcho(sess, size+i)
			} else {
				err = clientSink(sess, size+i)
			}
			if err != nil {
				errs <- fmt.Errorf("stream %d: %v", i, err)
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return fmt.Errorf("concurrent: %v", err)
	}
	say("OK concurrent %d streams %d bytes each", streams, size)

	// 2. the meshfed server half-closes first, then still reads what we send after its FIN.
	st, err := sess.OpenStream()
	if err != nil {
		return err
	}
	if _, err := st.Write([]byte{'F'}); err != nil {
		return err
	}
	got, err := io.ReadAll(st) // EOF = the server's FIN
	if err != nil || string(got) != "fin-first" {
		return fmt.Errorf("fin: got %q, %v", got, err)
	}
	if _, err := st.Write([]byte("after-fin")); err != nil {
		return fmt.Errorf("fin: write after remote FIN: %v", err)
	}
	st.Close()
	say("OK fin")

	// 3. the meshfed server resets the stream.
	st, err = sess.OpenStream()
	if err != nil {
		return err
	}
	if _, err := st.Write([]byte{'R'}); err != nil {
		return err
	}
	_, err = io.ReadAll(st)
	if err != yamux.ErrConnectionReset {
		return fmt.Errorf("rst: read ended with %v, want connection reset", err)
	}
	say("OK rst %v", err)

	// 4. the meshfed server opens a stream to us and checks our echo.
	st, err = sess.OpenStream()
	if err != nil {
		return err
	}
	if _, err := st.Write([]byte{'P'}); err != nil {
		return err
	}
	if err := writeU64(st, uint64(size)); err != nil {
		return err
	}
	reply := make([]byte, 7)
	if _, err := io.ReadFull(st, reply); err != nil || string(reply) != "push ok" {
		return fmt.Errorf("push: %q %v", reply, err)
	}
	st.Close()
	say("OK push")

	// 5. ping both ways.
	rtt, err := sess.Ping()
	if err != nil {
		return fmt.Errorf("ping: %v", err)
	}
	st, err = sess.OpenStream()
	if err != nil {
		return err
	}
	if _, err := st.Write([]byte{'X'}); err != nil {
		return err
	}
	reply = make([]byte, 4)
	if _, err := io.ReadFull(st, reply); err != nil || string(reply) != "pong" {
		return fmt.Errorf("ping from server: %q %v", reply, err)
	}
	st.Close()
	say("OK ping %v", rtt)

	// 6. go away: the meshfed server must refuse to open streams to us afterwards ('Q').
	if err := sess.GoAway(); err != nil {
		return err
	}
	st, err = sess.OpenStream()
	if err != nil {
		return err
	}
	if _, err := st.Write([]byte{'Q'}); err != nil {
		return err
	}
	got, err = io.ReadAll(st)
	if err != nil || string(got) != "refused" {
		return fmt.Errorf("goaway: %q %v", got, err)
	}
	st.Close()
	say("OK goaway")

	// 7. a second session with a tiny backlog that never accepts: the server's third open is reset.
	sess2, err := dial(addr, 2)
	if err != nil {
		return err
	}
	defer sess2.Close()
	st, err = sess2.OpenStream()
	if err != nil {
		return err
	}
	if _, err := st.Write([]byte{'B'}); err != nil {
		return err
	}
	got, err = io.ReadAll(st)
	if err != nil || string(got) != "refused 1" {
		return fmt.Errorf("backlog: %q %v", got, err)
	}
	st.Close()
	say("OK backlog")
	say("DONE")
	return nil
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

func clientEcho(sess *yamux.Session, n int) error {
	st, err := sess.OpenStream()
	if err != nil {
		return err
	}
	data := randomBytes(n)
	werr := make(chan error, 1)
	go func() {
		if _, err := st.Write([]byte{'E'}); err != nil {
			werr <- err
			return
		}
		_, err := st.Write(data)
		werr <- err
	}()
	back := make([]byte, n)
	if _, err := io.ReadFull(st, back); err != nil {
		return fmt.Errorf("echo read: %v", err)
	}
	if err := <-werr; err != nil {
		return fmt.Errorf("echo write: %v", err)
	}
	if !bytes.Equal(back, data) {
		return errors.New("echo differs")
	}
	if err := st.Close(); err != nil {
		return err
	}
	// The server ends its side after our FIN: expect a clean EOF.
	rest, err := io.ReadAll(st)
	if err != nil || len(rest) != 0 {
		return fmt.Errorf("echo tail %d bytes, %v", len(rest), err)
	}
	return nil
}

func clientSink(sess *yamux.Session, n int) error {
	st, err := sess.OpenStream()
	if err != nil {
		return err
	}
	data := randomBytes(n)
	hdr := make([]byte, 9)
	hdr[0] = 'S'
	binary.BigEndian.PutUint64(hdr[1:], uint64(n))
	if _, err := st.Write(hdr); err != nil {
		return err
	}
	if _, err := st.Write(data); err != nil {
		return err
	}
	reply := make([]byte, 40)
	if _, err := io.ReadFull(st, reply); err != nil {
		return fmt.Errorf("sink reply: %v", err)
	}
	sum := sha256.Sum256(data)
	if binary.BigEndian.Uint64(reply[:8]) != uint64(n) || !bytes.Equal(reply[8:], sum[:]) {
		return fmt.Errorf("sink reply mismatch: %x", reply)
	}
	return st.Close()
}

// ---- bench client ---------------------------------------------------------------------------------

func runBench(addr, mode string, streams int, total int64, chunk int, warmup int64) error {
	sess, err := dial(addr, 0)
	if err != nil {
		return err
	}
	defer sess.Close()
	if warmup > 0 {
		if err := benchRound(sess, mode, 1, warmup, chunk); err != nil {
			return err
		}
	}
	cpu0 := cpuSeconds()
	start := time.Now()
	if err := benchRound(sess, mode, streams, total, chunk); err != nil {
		return err
	}
	secs := time.Since(start).Seconds()
	say("RESULT %d %.6f %.4f", total, secs, cpuSeconds()-cpu0)
	return nil
}

func benchRound(sess *yamux.Session, mode string, streams int, total int64, chunk int) error {
	per := total / int64(streams)
	var wg sync.WaitGroup
	errs := make(chan error, streams)
	payload := make([]byte, chunk)
	for i := 0; i < streams; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := benchStream(sess, mode, per, payload); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

func benchStream(sess *yamux.Session, mode string, n int64, payload []byte) error {
	st, err := sess.OpenStream()
	if err != nil {
		return err
	}
	defer st.Close()
	werr := make(chan error, 1)
	go func() {
		var err error
		if mode == "echo" {
			_, err = st.Write([]byte{'E'})
		} else {
			hdr := make([]byte, 9)
			hdr[0] = 's'
			binary.BigEndian.PutUint64(hdr[1:], uint64(n))
			_, err = st.Write(hdr)
		}
		for left := n; err == nil && left > 0; {
			p := payload
			if int64(len(p)) > left {
				p = p[:left]
			}
			_, err = st.Write(p)
			left -= int64(len(p))
		}
		werr <- err
	}()
	if mode == "echo" {
		buf := make([]byte, 64<<10)
		got, err := io.CopyBuffer(io.Discard, io.LimitReader(st, n), buf)
		if err != nil {
			return err
		}
		if got != n {
			return fmt.Errorf("echo returned %d of %d bytes", got, n)
		}
	} else {
		c, err := readU64(st)
		if err != nil {
			return err
		}
		if int64(c) != n {
			return fmt.Errorf("sink counted %d, sent %d", c, n)
		}
	}
	return <-werr
}

// cpuSeconds is this process's user+system CPU time.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(ru.Utime) + tv(ru.Stime)
}
