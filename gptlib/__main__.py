import sys

try:
    from .cli import main
except KeyboardInterrupt:  # Ctrl-C while torch is still being imported: nothing has started
    print("interrupted before anything started; nothing was saved", file=sys.stderr)
    raise SystemExit(130) from None

raise SystemExit(main())
