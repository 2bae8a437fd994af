def main() -> int:
    print("labelflow")
    return 0
