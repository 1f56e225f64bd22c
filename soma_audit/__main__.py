from soma_audit.cli import main

raise SystemExit(main())
