from trustkit.cli import main

main()
