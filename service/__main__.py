import sys

from affectstream.service.cli import main

sys.exit(main())
