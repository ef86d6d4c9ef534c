# Reads a public header of libfuture (include/future/*.h) and finds, for
# each public function, its declaration and the comments that document it.
# Used by the doc check (cmake/check_docs.cmake) and by the man page
# generator (cmake/gen_man.cmake), so both see the same documentation.
#
# The headers use plain /* */ comments.  Which comment documents which
# function (the rule the doc check states):
#  - a function's own comment is the comment right above its declaration;
#    declarations that follow one another without a blank line share it
#    (fut_loop_add_reader / fut_loop_add_writer); other code lines (a
#    typedef) between them do not break the sharing;
#  - its paragraph is every comment above it back to the previous blank
#    line (a comment may document the first declarations of a paragraph and
#    a later one add to it: fut_cfuture_set_result, then _bytes);
#  - its section comment is the last comment opening with a rule
#    ("/* ---- scheduling ----" or "/* ====") above it, without the rule;
#  - the file's comment is the first comment of the header.
#
# fut_parse_header(<file> <prefix>) sets in the caller's scope:
#   <prefix>_TITLE       the file comment's first line, after "libfuture — "
#   <prefix>_INTRO       the file comment (text)
#   <prefix>_FUNCS       the public functions, in header order
#   <prefix>_CODE        the header without comments, guards and includes
#   <prefix>_FLOW        the order of the description: items "S<n>" (a
#                        section: <prefix>_S<n>_TITLE, <prefix>_S<n>_TEXT)
#                        and "F<name>" (a function)
#   <prefix>_DECL_<fn>   its declaration on one line (without FUT_EXTERN)
#   <prefix>_RET_<fn>    its return type
#   <prefix>_OWN_<fn>    its own comment (text), possibly shared
#   <prefix>_FIRST_<fn>  TRUE when it is the first declaration under OWN
#   <prefix>_PARA_<fn>   the comments of its paragraph (text)
#   <prefix>_SEC_<fn>    its section comment (text)
# Texts are one string with the comment's line breaks kept; list
# separators inside them are neutralised (fut_doc_restore undoes it).

string(ASCII 1 FUT_SEMI)
string(ASCII 2 FUT_LBR)
string(ASCII 3 FUT_RBR)
string(ASCII 4 FUT_BSL)

# The inverse of the neutralisation done when reading.
function(fut_doc_restore var)
  set(t "${${var}}")
  string(REPLACE "${FUT_SEMI}" ";" t "${t}")
  string(REPLACE "${FUT_LBR}" "[" t "${t}")
  string(REPLACE "${FUT_RBR}" "]" t "${t}")
  string(REPLACE "${FUT_BSL}" "\\" t "${t}")
  set(${var} "${t}" PARENT_SCOPE)
endfunction()

# The text of a comment: the /* */ and leading " * " stripped.
function(_fut_comment_text lines out)
  set(text "")
  foreach(l IN LISTS lines)
    string(REGEX REPLACE "^[ \t]*/\\*+ ?" "" l "${l}")
    string(REGEX REPLACE "[ \t]*\\*/.*$" "" l "${l}")
    string(REGEX REPLACE "^[ \t]*\\* ?" "" l "${l}")
    string(APPEND text "${l}\n")
  endforeach()
  string(REGEX REPLACE "^\n+" "" text "${text}")
  string(REGEX REPLACE "\n+$" "" text "${text}")
  set(${out} "${text}" PARENT_SCOPE)
endfunction()

# The end of a comment (in fut_parse_header's scope): cbuf holds its lines.
macro(_fut_end_comment)
  _fut_comment_text("${cbuf}" text)
  set(cbuf "")
  if(text MATCHES "^clang-format")
  elseif(NOT have_intro)
    set(have_intro TRUE)
    set(intro "${text}")
  else()
    # A section: "---- title ----" or a title between "====" rules.
    set(title "")
    if(text MATCHES "^-+ ([^\n]*[^- \n]) -+(\n|$)")
      set(title "${CMAKE_MATCH_1}")
      set(body "")
      if(text MATCHES "^[^\n]*\n(.*)$")
        set(body "${CMAKE_MATCH_1}")
      endif()
    elseif(text MATCHES "^=+\n([^\n]+)\n=+(\n(.*))?$")
      set(title "${CMAKE_MATCH_1}")
      set(body "${CMAKE_MATCH_3}")
    endif()
    if(NOT title STREQUAL "")
      math(EXPR nsec "${nsec} + 1")
      set(${prefix}_S${nsec}_TITLE "${title}" PARENT_SCOPE)
      set(${prefix}_S${nsec}_TEXT "${body}" PARENT_SCOPE)
      list(APPEND flow "S${nsec}")
      set(sec_text "${body}")
      set(own "")
      set(own_fresh FALSE)
      set(para "")
    else()
      if(own_fresh)
        string(APPEND own "\n${text}") # two comments in a row
      else()
        set(own "${text}")
      endif()
      set(own_fresh TRUE)
      if(para STREQUAL "")
        set(para "${text}")
      else()
        string(APPEND para "\n${text}")
      endif()
    endif()
  endif()
endmacro()

# The end of a declaration (in fut_parse_header's scope): dbuf holds it.
macro(_fut_end_decl)
  set(decl "${dbuf}")
  # A comment after the declaration on its line documents it too.
  set(trail "")
  if(decl MATCHES "${FUT_SEMI}[ \t]*/\\*(.*)\\*/")
    string(STRIP "${CMAKE_MATCH_1}" trail)
    string(REGEX REPLACE "${FUT_SEMI}[ \t]*/\\*.*$" "${FUT_SEMI}" decl "${decl}")
  endif()
  string(REGEX REPLACE "[ \t]+" " " decl "${decl}")
  string(REPLACE "( " "(" decl "${decl}")
  string(STRIP "${decl}" decl)
  string(REGEX REPLACE "^FUT_EXTERN " "" decl "${decl}")
  string(REGEX REPLACE " FUT_PRINTF\\([0-9, ]+\\)" "" decl "${decl}")
  string(REGEX REPLACE "[ \t]*{$" "${FUT_SEMI}" decl "${decl}")
  if(NOT decl MATCHES "^(.*[^A-Za-z0-9_])([A-Za-z_][A-Za-z0-9_]*)\\(")
    message(FATAL_ERROR "${file}: cannot read the declaration: ${decl}")
  endif()
  set(name "${CMAKE_MATCH_2}")
  string(STRIP "${CMAKE_MATCH_1}" ret)
  string(REGEX REPLACE "^static inline " "" ret "${ret}")
  list(APPEND funcs ${name})
  list(APPEND flow "F${name}")
  set(${prefix}_DECL_${name} "${decl}" PARENT_SCOPE)
  set(${prefix}_RET_${name} "${ret}" PARENT_SCOPE)
  set(o "${own}")
  set(p "${para}")
  if(NOT trail STREQUAL "")
    if(o STREQUAL "")
      set(o "${trail}")
    else()
      string(APPEND o "\n${trail}")
    endif()
    string(APPEND p "\n${trail}")
  endif()
  set(${prefix}_OWN_${name} "${o}" PARENT_SCOPE)
  set(${prefix}_FIRST_${name} ${own_fresh} PARENT_SCOPE)
  set(${prefix}_PARA_${name} "${p}" PARENT_SCOPE)
  set(${prefix}_SEC_${name} "${sec_text}" PARENT_SCOPE)
  set(own_fresh FALSE)
  if(dbuf MATCHES "{[ \t]*$")
    set(in_body TRUE)
  endif()
  string(REGEX REPLACE "^[ \t]*FUT_EXTERN " "" dl "${dbuf}")
  string(REGEX REPLACE "[ \t]*/\\*[^/]*\\*/[ \t]*$" "" dl "${dl}")
  string(REGEX REPLACE " FUT_PRINTF\\([0-9, ]+\\)" "" dl "${dl}")
  string(APPEND code "${dl}\n")
endmacro()

function(fut_parse_header file prefix)
  file(READ ${file} src)
  string(REPLACE "\\" "${FUT_BSL}" src "${src}")
  string(REPLACE ";" "${FUT_SEMI}" src "${src}")
  string(REPLACE "[" "${FUT_LBR}" src "${src}")
  string(REPLACE "]" "${FUT_RBR}" src "${src}")
  string(REPLACE "\n" ";" lines "${src}")

  set(funcs "")
  set(flow "")
  set(code "")
  set(intro "")
  set(have_intro FALSE)
  set(nsec 0)
  set(sec_text "")
  set(own "")        # the comment documenting the next declarations
  set(own_fresh FALSE)
  set(para "")       # comments since the last blank line
  set(in_comment FALSE)
  set(cbuf "")
  set(in_decl FALSE)
  set(dbuf "")
  set(in_body FALSE) # the body of a static inline function

  foreach(line IN LISTS lines)
    if(in_comment)
      list(APPEND cbuf "${line}")
      if(line MATCHES "\\*/")
        set(in_comment FALSE)
        _fut_end_comment()
      endif()
      continue()
    endif()
    if(in_decl)
      string(APPEND dbuf "\n${line}")
      if(line MATCHES "${FUT_SEMI}" OR line MATCHES "{[ \t]*$")
        set(in_decl FALSE)
        string(REPLACE "\n" " " dflat "${dbuf}")
        set(dlines "${dbuf}")
        set(dbuf "${dflat}")
        _fut_end_decl()
      endif()
      continue()
    endif()
    if(in_body)
      if(line MATCHES "^}")
        set(in_body FALSE)
      endif()
      string(APPEND code "${line}\n")
      continue()
    endif()
    if(line MATCHES "^[ \t]*/\\*")
      set(cbuf "${line}")
      if(line MATCHES "\\*/")
        _fut_end_comment()
      else()
        set(in_comment TRUE)
      endif()
      continue()
    endif()
    if(line MATCHES "^[ \t]*$")
      set(own "")
      set(own_fresh FALSE)
      set(para "")
      if(NOT code STREQUAL "" AND NOT code MATCHES "\n\n$")
        string(APPEND code "\n")
      endif()
      continue()
    endif()
    if(line MATCHES "^FUT_EXTERN " OR line MATCHES "^static inline ")
      set(dbuf "${line}")
      if(line MATCHES "${FUT_SEMI}" OR line MATCHES "{[ \t]*$")
        _fut_end_decl()
      else()
        set(in_decl TRUE)
      endif()
      continue()
    endif()
    # other code: kept for the synopsis, minus guards, includes, extern "C"
    if(line MATCHES "^#(ifndef|define) FUTURE_[A-Z_]*_H$"
       OR line MATCHES "^#include"
       OR line MATCHES "^#(ifdef|ifndef|endif|if|else|elif)"
       OR line MATCHES "^extern \"C\" {$"
       OR line MATCHES "^}$")
      continue()
    endif()
    string(REGEX REPLACE "[ \t]*/\\*.*\\*/[ \t]*$" "" l "${line}")
    if(NOT l MATCHES "^[ \t]*$")
      string(APPEND code "${l}\n")
    endif()
  endforeach()

  set(title "${intro}")
  string(REGEX REPLACE "\n.*" "" title "${title}")
  string(REGEX REPLACE "^libfuture[ ]+[^ ]+[ ]+" "" title "${title}")
  string(REGEX REPLACE "\\.$" "" title "${title}")
  string(REGEX REPLACE "\n\n+" "\n\n" code "${code}")
  string(REGEX REPLACE "^\n+" "" code "${code}")
  string(REGEX REPLACE "\n+$" "\n" code "${code}")
  set(${prefix}_TITLE "${title}" PARENT_SCOPE)
  set(${prefix}_INTRO "${intro}" PARENT_SCOPE)
  set(${prefix}_FUNCS "${funcs}" PARENT_SCOPE)
  set(${prefix}_FLOW "${flow}" PARENT_SCOPE)
  set(${prefix}_CODE "${code}" PARENT_SCOPE)
endfunction()

# Splits a comment text into sentences, one list item each (lines joined).
function(fut_sentences text out)
  # A line that ends a sentence keeps its break as a sentence break.
  string(REGEX REPLACE "([.:])\n" "\\1  " t "${text}")
  string(REPLACE "\n" " " t "${t}")
  string(REGEX REPLACE "[ ]+$" "" t "${t}")
  # Sentences end with ".  " (two spaces, the headers' style) or ". " before
  # a capital; neutralise existing separators first.
  string(REGEX REPLACE "([.!?])  +" "\\1${FUT_SEMI}${FUT_SEMI}" t "${t}")
  string(REPLACE "${FUT_SEMI}${FUT_SEMI}" ";" t "${t}")
  set(res "")
  foreach(s IN LISTS t)
    string(STRIP "${s}" s)
    if(NOT s STREQUAL "")
      list(APPEND res "${s}")
    endif()
  endforeach()
  set(${out} "${res}" PARENT_SCOPE)
endfunction()

# The sentences of text that describe a return value / errors.
set(FUT_RETURN_RE "([Rr]eturn(s|ed|ing)?|[Gg]ives)[ :]")
set(FUT_ERRORS_RE "([Ee]rrors?( of [a-z_ ]+| \\([^)]*\\))?:|[Ee]rrors ?[a-z ]*:|(^|[ (])(-E[A-Z]+|FUT_E_[A-Z_]+))")
function(fut_pick_sentences text regex out)
  fut_sentences("${text}" ss)
  set(res "")
  foreach(s IN LISTS ss)
    if(s MATCHES "${regex}")
      list(APPEND res "${s}")
    endif()
  endforeach()
  set(${out} "${res}" PARENT_SCOPE)
endfunction()
