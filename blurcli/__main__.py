from blurcli.cli import main

main()
