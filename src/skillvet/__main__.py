from skillvet.cli import main

raise SystemExit(main())
