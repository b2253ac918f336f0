"""The MFA domain: challenges, factors, codes and limits, free of any framework or I/O."""
