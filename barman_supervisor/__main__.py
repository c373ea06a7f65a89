from barman_supervisor.cli import main

raise SystemExit(main())
