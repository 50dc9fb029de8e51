/* A Windows module whose PyInit only jumps into a DLL beside it, as delvewheel bundles
 * one in <package>.libs/ (the Windows shape of fixtures/ext/handover.c).
 *
 * The DLL is fixtures/ext/portable.c with its init renamed:
 *   clang --target=x86_64-pc-windows-msvc -ffreestanding -O2 -c -DVARIANT=<1|2>
 *         -DMODNAME=handed -DFT -DPyInit_handed=Wrapped_PyInit_handed portable.c
 * The module is this file, linked against an import library of that DLL:
 *   clang --target=x86_64-pc-windows-msvc -ffreestanding -O2 -c handover_pe.c
 */
typedef struct _object PyObject;

__declspec(dllimport) PyObject *Wrapped_PyInit_handed(void);

__declspec(dllexport) PyObject *PyInit_handed(void) { return Wrapped_PyInit_handed(); }
