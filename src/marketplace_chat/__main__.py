from marketplace_chat.cli import main

raise SystemExit(main())
