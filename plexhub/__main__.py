from plexhub.cli import main

raise SystemExit(main())
