from netpulse.cli import main

main()
