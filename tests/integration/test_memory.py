#!/usr/bin/python3
# timeout: 300
"""Memory per connection is bounded whatever the message size (interface.md
§1): wsflowd's RSS stays flat while one client streams 1 GiB, and while a
single 256 MiB frame arrives at /message."""
import hashlib
import os
import threading

from wsflowtest import (SANITIZE, Daemon, Skip, WSClient, case, check, diag,
                        frame_header, run_cases, wait_for)

MiB = 1 << 20
ENDLESS = 0x7FFFFFFFFFFFFFFF
WARMUP = 64                 # MiB hashed before the first RSS sample
GROWTH_KIB = 2048           # allowed RSS growth after warm-up
_rss = {}                   # samples of the 1 GiB case, checked by the next


def stream_and_sample(d, path, header, blocks, block, digests_per_block):
    """Send header then `blocks` copies of block (zero mask key: the octets
    go out as is, so Python is not the bottleneck) while a reader thread
    collects digests and samples RSS every 64 digests after the warm-up.
    Returns (digests, rss samples in KiB)."""
    c = WSClient(d.port, path, timeout=60)
    samples = []
    warm = WARMUP * digests_per_block

    def on_digest(n):
        if n >= warm and n % (64 * digests_per_block) == 0:
            samples.append(d.rss_kib())
    c.start_reader(on_digest)
    err = []

    def send():
        try:
            c.send(header)
            for _ in range(blocks):
                c.send(block)
        except OSError as e:
            err.append(e)
    t = threading.Thread(target=send, daemon=True)
    t.start()
    want = blocks * digests_per_block
    wait_for(lambda: len(c.messages) >= want or c.end is not None, 120)
    samples.append(d.rss_kib())          # at the end, before the drop
    check(not err, 'send failed: %s' % err)
    c.abort()                            # drop TCP mid-frame, as the tutorial
    return c.messages, samples, c.end


def check_rss(samples, what):
    diag('%s: VmRSS after warm-up %d KiB, max %d KiB, end %d KiB'
         % (what, samples[0], max(samples), samples[-1]))
    if SANITIZE:
        return False
    growth = max(samples) - samples[0]
    check(growth < GROWTH_KIB, '%s: RSS grew %d KiB after warm-up (limit %d)'
          % (what, growth, GROWTH_KIB))
    return True


@case('1 GiB streamed in one endless frame at /: 1024 digests, all correct, '
      'the last equal to hashlib\'s')
def _():
    d = Daemon().start()
    block = os.urandom(MiB)
    h, want = hashlib.sha256(), []
    for _ in range(1024):                 # batch_size 1 MiB = one block
        h.update(block)
        want.append(h.hexdigest())
    got, samples, end = stream_and_sample(d, '/', frame_header(ENDLESS, fin=False),
                                          1024, block, 1)
    check(len(got) == 1024, 'got %d digests, want 1024 (end: %s)' % (len(got), end))
    bad = [i for i, (g, w) in enumerate(zip(got, want)) if g != w]
    check(not bad, '%d wrong digests, first #%d' % (len(bad), bad[0] if bad else -1))
    check(got[-1] == h.hexdigest(), 'last digest differs from hashlib')
    _rss['stream'] = samples
    check(d.alive(), 'wsflowd died')
    d.check_clean_stop()


@case('1 GiB at /: wsflowd VmRSS grows < 2 MiB after the first 64 MiB')
def _():
    check('stream' in _rss, 'no samples: the 1 GiB case failed')
    if not check_rss(_rss['stream'], '1 GiB at /'):
        raise Skip('asan')


@case('one 256 MiB frame at /message: one correct digest, VmRSS grows < 2 MiB '
      'after the first 64 MiB (nothing buffered per message)')
def _():
    d = Daemon().start()
    block = os.urandom(MiB)
    h = hashlib.sha256()
    for _ in range(256):
        h.update(block)
    # /message sends nothing until the end: sample RSS from the main thread
    c = WSClient(d.port, '/message', timeout=60)
    c.start_reader()
    samples = []
    c.send(frame_header(256 * MiB))
    for i in range(256):
        c.send(block)
        if i >= WARMUP and i % 32 == 0:
            samples.append(d.rss_kib())
    check(wait_for(lambda: c.messages or c.end, 30), 'no digest (end: %s)' % c.end)
    samples.append(d.rss_kib())
    check(c.messages == [h.hexdigest()], 'digest %s, want %s' % (c.messages, h.hexdigest()))
    c.abort()
    d.check_clean_stop()
    if not check_rss(samples, '256 MiB frame at /message'):
        raise Skip('asan')


if __name__ == '__main__':
    run_cases()
