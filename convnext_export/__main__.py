from convnext_export.cli import main

main()
