from tfdenoise.cli import main

main()
